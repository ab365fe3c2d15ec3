import { type ChatClient, type ConversationState, type LiveConversation, PresenceStore, type PresenceView } from '@chat-service/client';
import { h } from './dom.js';
import type { MembersPanel } from './members-panel.js';
import { presenceBadge } from './presence-dot.js';

/** "last seen 5 minutes ago" is redrawn this often, so it ages while the page stays open. */
const AGE_EVERY_MS = 30_000;
/**
 * The service's default PRESENCE_MAX_MEMBERS: larger conversations get no live presence
 * events, so their presence is read again every REFRESH_LARGE_MS instead.
 */
const LIVE_PRESENCE_MAX_MEMBERS = 100;
const REFRESH_LARGE_MS = 60_000;

/**
 * The open conversation's presence: a store kept current from its socket, shown as dots in the
 * members panel and, in the header, the other person's status (direct conversations) or how
 * many are online (groups). `other` hears the other person's entry of a direct conversation.
 */
export class PanePresence {
  readonly header = h('span', { class: 'header-presence muted', 'data-testid': 'header-presence', 'aria-live': 'polite' });
  private readonly badge = presenceBadge();
  private store: PresenceStore | undefined;
  private state: ConversationState | undefined;
  private readonly ager = setInterval(() => this.render(), AGE_EVERY_MS);

  constructor(
    private readonly myId: number,
    private readonly panel: MembersPanel,
    private readonly other: (entry: PresenceView | undefined) => void,
  ) {}

  start(client: ChatClient, live: LiveConversation): void {
    const large = live.conversation.member_count > LIVE_PRESENCE_MAX_MEMBERS;
    const store = new PresenceStore(client, live.socket, { refreshMs: large ? REFRESH_LARGE_MS : undefined });
    this.store = store;
    store.on('change', () => this.render());
    store.on('fresh', () => this.render());
    this.panel.setPresence(store);
  }

  get(userId: number): PresenceView | undefined {
    return this.store?.get(userId);
  }

  /** Membership changed (the panel re-rendered its rows): the header follows. */
  changed(state: ConversationState): void {
    this.state = state;
    this.render();
  }

  destroy(): void {
    clearInterval(this.ager);
    this.store?.close();
  }

  private render(): void {
    const store = this.store;
    const state = this.state;
    const now = Date.now();
    this.panel.showPresence(now);
    if (!store || !state) return;
    if (state.kind === 'direct') {
      const otherId = [...state.members.keys()].find((id) => id !== this.myId);
      const entry = otherId === undefined ? undefined : store.get(otherId);
      this.badge.show(entry, store.fresh, now);
      this.header.replaceChildren(this.badge.dot, this.badge.text);
      this.other(entry);
      return;
    }
    let online = 0;
    for (const id of state.members.keys()) if (store.isOnline(id)) online += 1;
    this.header.dataset.online = String(online);
    this.header.textContent = store.list().length === 0 ? '' : `${online} of ${state.members.size} online`;
  }
}
