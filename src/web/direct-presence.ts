import type { ChatClient, ConversationView, PresenceView } from '@chat-service/client';
import { presenceBadge } from './presence-dot.js';

/** The list shows the other person's dot for the newest this many direct conversations (one read each). */
const LIST_MAX = 20;
/** Coming back to the tab reads them again once they are this old. */
const STALE_MS = 60_000;

/**
 * The dots of direct conversations in the conversation list. Only an open conversation has a
 * socket that tells of changes: its pane keeps its dot live (`setLive`); the others are read
 * over REST with the list, and again when the tab is shown after a while, not polled.
 */
export class DirectPresence {
  /** The other person of each direct conversation, by conversation id. */
  private readonly entries = new Map<number, PresenceView>();
  private live: number | undefined;
  private readAt = 0;
  private reading = false;

  constructor(
    private readonly client: ChatClient,
    private readonly myId: number,
    private readonly changed: () => void,
  ) {}

  async read(conversations: readonly ConversationView[]): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    this.readAt = Date.now();
    const direct = conversations.filter((conversation) => conversation.kind === 'direct').slice(0, LIST_MAX);
    const rows = await Promise.allSettled(direct.map((conversation) => this.client.listPresence(conversation.id)));
    this.reading = false;
    rows.forEach((result, index) => {
      const id = direct[index]!.id;
      const other = result.status === 'fulfilled' ? result.value.find((row) => row.user_id !== this.myId) : undefined;
      // The open one's pane knows better (and later).
      if (other && id !== this.live) this.entries.set(id, other);
    });
    this.changed();
  }

  readIfStale(conversations: readonly ConversationView[]): void {
    if (Date.now() - this.readAt >= STALE_MS) void this.read(conversations);
  }

  /** The open direct conversation's pane heard of a change. */
  setLive(conversationId: number, entry: PresenceView | undefined): void {
    this.live = conversationId;
    if (entry) this.entries.set(conversationId, entry);
    this.changed();
  }

  /** The open conversation closed: its dot is read with the others again. */
  leave(): void {
    this.live = undefined;
  }

  /** The dot of a direct conversation in the list. */
  dot(conversationId: number): HTMLElement {
    const badge = presenceBadge();
    badge.show(this.entries.get(conversationId), true);
    return badge.dot;
  }
}
