import { reloadConversation } from './chat-reload.js';
import type { ChatReset, ChatSocket } from './chat-socket.js';
import { ConversationState } from './conversation-state.js';
import { Emitter } from './emitter.js';
import type { ConversationEvent, ConversationView, MemberRemovedEvent, MessageView, ReadUpdatedEvent } from './generated/contract.js';
import { MessageStore } from './message-store.js';
import type { RestClient } from './rest.js';

interface LiveConversationEvents {
  /** The state changed (an event, a receipt, a read of one's own): re-render from `state`. */
  change: ConversationState;
  event: ConversationEvent;
  receipt: ReadUpdatedEvent;
  /** The caller was removed (or left): the socket is closed for good. */
  removed: MemberRemovedEvent;
  /** Messages in `messages` an event added or changed (reactions, edits, reply previews of an edited or deleted original), as they are now. */
  messages: MessageView[];
  /**
   * Fallen too far behind (4409), the conversation was reloaded over REST: `messages` now
   * holds only the newest page (`reset.messages`); show it in place of the list.
   */
  reset: ChatReset;
}

/**
 * A conversation kept current: its socket (resumed from the `last_seq` read with the
 * conversation, so nothing between that read and the socket is missed) and a
 * `ConversationState` fed from every event and receipt.
 */
export class LiveConversation extends Emitter<LiveConversationEvents> {
  constructor(
    private readonly client: RestClient,
    readonly conversation: ConversationView,
    readonly state: ConversationState,
    readonly socket: ChatSocket,
    /** The loaded messages, kept current from the events; add history pages with `messages.add`. */
    readonly messages: MessageStore,
  ) {
    super();
    socket.on('event', (event) => {
      state.apply(event);
      const changed = messages.apply(event);
      this.emit('event', event);
      if (changed.length > 0) this.emit('messages', changed);
      this.emit('change', state);
    });
    socket.on('reset', (reset) => {
      state.reset(reset.conversation, reset.members ?? [...state.members.values()].map((member) => ({ ...member, joined_at: '' })));
      messages.clear();
      messages.add(reset.messages);
      state.observe(reset.messages);
      this.emit('reset', reset);
      this.emit('change', state);
    });
    socket.on('receipt', (receipt) => {
      state.applyReceipt(receipt);
      this.emit('receipt', receipt);
      this.emit('change', state);
    });
    socket.on('removed', (event) => {
      state.removed = event;
      this.emit('removed', event);
      this.emit('change', state);
    });
  }

  get id(): number {
    return this.state.id;
  }

  /** Moves the caller's marker to `seq` over the socket (`read` frame); the state follows at once. */
  read(seq: number): void {
    const target = Math.min(seq, this.state.lastSeq);
    if (target <= this.state.lastReadSeq) return;
    this.socket.read(target);
    this.state.readTo(target);
    this.emit('change', this.state);
  }

  /** Moves the caller's marker over REST; the answer's exact unread count replaces the state's. */
  async markRead(seq: number): Promise<void> {
    const answer = await this.client.markRead(this.id, seq);
    this.state.setUnread(answer.last_read_seq, answer.unread_count);
    this.emit('change', this.state);
  }

  close(): void {
    this.socket.close();
  }
}

/**
 * Reads the conversation (its `last_seq`), then every member, then opens the socket from that
 * `last_seq`. After a 4409 the socket reloads the conversation, its newest page and its members.
 */
export async function openLiveConversation(
  client: RestClient,
  conversationId: number,
  chat: (lastSeq: number, reload: () => Promise<ChatReset>) => ChatSocket,
): Promise<LiveConversation> {
  const me = client.user ?? (await client.me());
  const conversation = await client.getConversation(conversationId);
  const members = await client.listMembers(conversationId);
  const state = new ConversationState(conversation, members, me.id);
  const reload = async (): Promise<ChatReset> => ({ ...(await reloadConversation(client, conversationId)), members: await client.listMembers(conversationId) });
  const messages = new MessageStore(me.id, me.username, () => state.members.values());
  return new LiveConversation(client, conversation, state, chat(conversation.last_seq, reload), messages);
}
