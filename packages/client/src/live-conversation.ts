import type { ChatSocket } from './chat-socket.js';
import { ConversationState } from './conversation-state.js';
import { Emitter } from './emitter.js';
import type { ConversationEvent, ConversationView, MemberRemovedEvent, ReadUpdatedEvent } from './generated/contract.js';
import type { RestClient } from './rest.js';

interface LiveConversationEvents {
  /** The state changed (an event, a receipt, a read of one's own): re-render from `state`. */
  change: ConversationState;
  event: ConversationEvent;
  receipt: ReadUpdatedEvent;
  /** The caller was removed (or left): the socket is closed for good. */
  removed: MemberRemovedEvent;
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
  ) {
    super();
    socket.on('event', (event) => {
      state.apply(event);
      this.emit('event', event);
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

/** Reads the conversation (its `last_seq`), then every member, then opens the socket from that `last_seq`. */
export async function openLiveConversation(client: RestClient, conversationId: number, chat: (lastSeq: number) => ChatSocket): Promise<LiveConversation> {
  const me = client.user ?? (await client.me());
  const conversation = await client.getConversation(conversationId);
  const members = await client.listMembers(conversationId);
  const state = new ConversationState(conversation, members, me.id);
  return new LiveConversation(client, conversation, state, chat(conversation.last_seq));
}
