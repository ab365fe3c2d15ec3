import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import type { ChatSocket } from './chat-socket.js';
import { Emitter } from './emitter.js';
import type { PresenceEvent, PresenceView } from './generated/contract.js';
import type { RestClient } from './rest.js';

export interface PresenceStoreOptions {
  /**
   * Also reads everything again this often (ms) while the socket is open. Off by default: the
   * socket's `presence` events keep the store current, but only in conversations of up to the
   * service's PRESENCE_MAX_MEMBERS (default 100) members; larger ones get no events.
   */
  refreshMs?: number;
  /** Waits between failed reads (the store reads again until one succeeds, while the socket is open). */
  backoff?: Partial<BackoffOptions>;
}

interface PresenceStoreEvents {
  /** Members whose status (or, offline, `last_seen_at`) changed, as they are now. */
  change: PresenceView[];
  /**
   * `true` once a read after the socket (re)opened has arrived, `false` as soon as the socket
   * is not open: while it is not, changes are missed and what the store holds may be old.
   */
  fresh: boolean;
  /** A read failed; it is tried again after a backoff while the socket stays open. */
  error: unknown;
}

/**
 * The socket opens before the service has subscribed it to the conversation: a change in that
 * moment reaches neither the socket nor a read made before it. A second read this long after
 * each open closes the gap (the service's set-up is a query and a subscribe).
 */
export const PRESENCE_SETTLE_MS = 1_500;

/**
 * A conversation's members' presence (`online`/`offline`, `last_seen_at`), kept current: read
 * over REST whenever the chat socket opens (first connect, reconnect, resume after a 4409), and
 * again once it settled; changed by the socket's live `presence` events in between; read again
 * when members are added, and forgetting those removed. An event that arrives while a read is
 * under way is newer than it and wins. The caller's own entry is as the reads have it (the
 * service sends no one events about themself).
 */
export class PresenceStore extends Emitter<PresenceStoreEvents> {
  readonly conversationId: number;
  private readonly entries = new Map<number, PresenceView>();
  private readonly off: Array<() => void>;
  private readonly backoff: BackoffOptions;
  private loading: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  /** Users an event told about during the read under way. */
  private touched: Set<number> | undefined;
  private current = false;
  private closed = false;
  private failures = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private settleTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly refreshTimer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly client: Pick<RestClient, 'listPresence'>,
    private readonly socket: ChatSocket,
    options: PresenceStoreOptions = {},
  ) {
    super();
    this.conversationId = socket.conversationId;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.off = [
      socket.on('presence', (event) => this.apply(event)),
      socket.on('state', (state) => (state === 'open' ? this.opened() : this.lost())),
      socket.on('event', (event) => {
        if (event.type === 'member.added') void this.reload();
        else if (event.type === 'member.removed') this.entries.delete(event.user.id);
      }),
    ];
    if (options.refreshMs !== undefined && options.refreshMs > 0) {
      this.refreshTimer = setInterval(() => {
        if (this.socket.state === 'open') void this.reload();
      }, options.refreshMs);
    }
    if (socket.state === 'open') this.opened();
  }

  /** One member's presence, if known. */
  get(userId: number): PresenceView | undefined {
    return this.entries.get(userId);
  }

  isOnline(userId: number): boolean {
    return this.entries.get(userId)?.status === 'online';
  }

  /** Every member known, by user id. */
  list(): PresenceView[] {
    return [...this.entries.values()].sort((a, b) => a.user_id - b.user_id);
  }

  /** Read since the socket last opened, and the socket still open (see the `fresh` event). */
  get fresh(): boolean {
    return this.current;
  }

  /** Reads every member's presence again (coalesced: one read at a time, at most one more queued). */
  reload(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.queued) return this.queued;
    if (this.loading) {
      this.queued = this.loading.then(() => {
        this.queued = undefined;
        return this.reload();
      });
      return this.queued;
    }
    this.loading = this.read().finally(() => (this.loading = undefined));
    return this.loading;
  }

  /** Stops listening to the socket (which stays open: it is the caller's). */
  close(): void {
    this.closed = true;
    for (const off of this.off) off();
    clearTimeout(this.retryTimer);
    clearTimeout(this.settleTimer);
    clearInterval(this.refreshTimer);
  }

  private opened(): void {
    clearTimeout(this.settleTimer);
    void this.reload();
    this.settleTimer = setTimeout(() => void this.reload(), PRESENCE_SETTLE_MS);
  }

  private lost(): void {
    clearTimeout(this.settleTimer);
    clearTimeout(this.retryTimer);
    this.setFresh(false);
  }

  private apply(event: PresenceEvent): void {
    if (this.closed || event.conversation_id !== this.conversationId) return;
    this.touched?.add(event.user_id);
    const next: PresenceView = { user_id: event.user_id, username: event.user, status: event.status, last_seen_at: event.last_seen_at };
    if (this.put(next)) this.emit('change', [next]);
  }

  private async read(): Promise<void> {
    const touched = new Set<number>();
    this.touched = touched;
    try {
      const rows = await this.client.listPresence(this.conversationId);
      if (this.closed) return;
      const members = new Set(rows.map((row) => row.user_id));
      for (const id of this.entries.keys()) if (!members.has(id) && !touched.has(id)) this.entries.delete(id);
      const changed = rows.filter((row) => !touched.has(row.user_id) && this.put(row));
      this.failures = 0;
      this.setFresh(this.socket.state === 'open');
      if (changed.length > 0) this.emit('change', changed);
    } catch (error) {
      if (this.closed) return;
      this.emit('error', error);
      if (this.socket.state === 'open') {
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => void this.reload(), backoffDelay(this.failures++, this.backoff));
      }
    } finally {
      if (this.touched === touched) this.touched = undefined;
    }
  }

  /** Holds `next`; whether that changed anything (an online member's `last_seen_at` is "now" in every read, and no change). */
  private put(next: PresenceView): boolean {
    const held = this.entries.get(next.user_id);
    if (held && held.status === next.status && held.username === next.username && (next.status === 'online' || held.last_seen_at === next.last_seen_at)) return false;
    this.entries.set(next.user_id, next);
    return true;
  }

  private setFresh(fresh: boolean): void {
    if (fresh === this.current) return;
    this.current = fresh;
    this.emit('fresh', fresh);
  }
}
