import type { MessageView, ConversationView, ConversationEvent, MemberRemovedEvent, ReadUpdatedEvent, MemberRole as Role, MemberView } from './generated/contract.js';

/** A member as the state knows them: role and read marker kept current from events. */
export interface MemberState {
  id: number;
  username: string;
  role: Role;
  last_read_seq: number;
}

/**
 * One conversation's membership and read state, kept current from its events: who is in it
 * and with which role (`member.*`), its title (`conversation.updated`), everyone's read marker
 * (`read.updated` receipts, and a member's own message, which moves their marker to it), and
 * the caller's unread count. Built from the conversation, its member list and, optionally,
 * the messages already loaded; then fed every event of the conversation's socket in order.
 *
 * The unread count starts from the service's `unread_count`; it then counts the messages from
 * others that arrive, uncounts those deleted, and drops what the caller's marker passes.
 * Messages counted by the service but never seen here (older than any loaded page) stay
 * counted until the marker reaches the newest seq the service had counted to, or until a
 * `markRead` answer says the exact count (`setUnread`).
 */
export class ConversationState {
  readonly id: number;
  title: string | null;
  kind: 'direct' | 'group';
  lastSeq: number;
  readonly members = new Map<number, MemberState>();
  /** The `member.removed` about the caller, once they were removed or left. */
  removed: MemberRemovedEvent | undefined;
  private readonly userId: number;
  /** Unread messages from others this state has seen, by id: their seq. */
  private readonly unseen = new Map<number, number>();
  /** Unread messages the service counted that this state has not seen. */
  private unknownUnread: number;
  /** The seq the service's count went up to: a marker at or past it has read every unknown one. */
  private countedTo: number;
  private myMarker: number;

  constructor(conversation: ConversationView, members: readonly MemberView[], userId: number) {
    this.id = conversation.id;
    this.userId = userId;
    this.title = null;
    this.kind = 'group';
    this.lastSeq = 0;
    this.myMarker = 0;
    this.unknownUnread = 0;
    this.countedTo = 0;
    this.reset(conversation, members);
  }

  /** Starts over from a fresh read of the conversation and its members (a reload after falling too far behind). */
  reset(conversation: ConversationView, members: readonly MemberView[]): void {
    const userId = this.userId;
    this.unseen.clear();
    this.members.clear();
    this.removed = undefined;
    this.title = conversation.title ?? null;
    this.kind = conversation.kind ?? 'group';
    this.lastSeq = conversation.last_seq;
    this.myMarker = conversation.last_read_seq ?? 0;
    this.unknownUnread = conversation.unread_count ?? 0;
    this.countedTo = conversation.last_seq;
    for (const member of members) this.members.set(member.id, { id: member.id, username: member.username, role: member.role, last_read_seq: member.last_read_seq });
    const me = this.members.get(userId);
    if (me) me.last_read_seq = Math.max(me.last_read_seq, this.myMarker);
  }

  /** The caller's read marker. */
  get lastReadSeq(): number {
    return this.myMarker;
  }

  get unreadCount(): number {
    return this.unseen.size + this.unknownUnread;
  }

  get myRole(): Role | undefined {
    return this.members.get(this.userId)?.role;
  }

  /** Owner and admins add, remove and rename; never in a direct conversation. */
  get canManage(): boolean {
    return this.kind === 'group' && (this.myRole === 'owner' || this.myRole === 'admin');
  }

  /** Members other than `exceptIds` whose marker is at or past `seq`: who has seen that event. */
  seenBy(seq: number, exceptIds: readonly number[] = []): MemberState[] {
    return [...this.members.values()].filter((member) => member.last_read_seq >= seq && !exceptIds.includes(member.id));
  }

  /** Messages already loaded (a history page): lets the count follow them when they are read or deleted. */
  observe(messages: readonly MessageView[]): void {
    for (const message of messages) {
      if (message.is_deleted || message.sender_id === this.userId || message.seq <= this.myMarker || this.unseen.has(message.id)) continue;
      if (message.seq > this.countedTo) continue; // arrives (or arrived) as an event: counted there
      if (this.unknownUnread === 0) continue; // the service did not count it: already read
      this.unknownUnread -= 1;
      this.unseen.set(message.id, message.seq);
    }
  }

  /** Applies one conversation event, in `seq` order. */
  apply(event: ConversationEvent): void {
    this.lastSeq = Math.max(this.lastSeq, event.seq);
    switch (event.type) {
      case 'chat.message': {
        const sender = event.message.sender_id;
        this.moveMarker(sender, event.seq);
        if (sender !== this.userId && event.seq > this.myMarker && event.seq > this.countedTo) this.unseen.set(event.message.id, event.seq);
        return;
      }
      case 'message.deleted':
        this.unseen.delete(event.message_id);
        return;
      case 'member.added':
        for (const user of event.users) {
          // A new member starts with everything up to their own joining read (the service sets it so).
          if (!this.members.has(user.id)) this.members.set(user.id, { id: user.id, username: user.username, role: 'member', last_read_seq: event.seq });
        }
        return;
      case 'member.removed':
        this.members.delete(event.user.id);
        if (event.user.id === this.userId) this.removed = event;
        return;
      case 'member.role': {
        const member = this.members.get(event.user.id);
        if (member) member.role = event.role;
        else this.members.set(event.user.id, { id: event.user.id, username: event.user.username, role: event.role, last_read_seq: 0 });
        return;
      }
      case 'conversation.updated':
        this.title = event.conversation.title;
        return;
      default:
        return;
    }
  }

  /** A `read.updated` receipt: that member's marker moves forward. */
  applyReceipt(receipt: ReadUpdatedEvent): void {
    this.moveMarker(receipt.user_id, receipt.last_read_seq);
  }

  /** The caller read up to `seq` (their own `read` frame: no receipt comes back to that socket). */
  readTo(seq: number): void {
    this.moveMarker(this.userId, Math.min(seq, this.lastSeq));
  }

  /** The exact state after the caller's `markRead` (REST answer). */
  setUnread(lastReadSeq: number, unreadCount: number): void {
    this.moveMarker(this.userId, lastReadSeq);
    this.unknownUnread = Math.max(0, unreadCount - this.unseen.size);
  }

  private moveMarker(userId: number, seq: number): void {
    const member = this.members.get(userId);
    if (member && seq > member.last_read_seq) member.last_read_seq = seq;
    if (userId !== this.userId || seq <= this.myMarker) return;
    this.myMarker = seq;
    for (const [id, messageSeq] of this.unseen) if (messageSeq <= seq) this.unseen.delete(id);
    if (seq >= this.countedTo) this.unknownUnread = 0;
  }
}
