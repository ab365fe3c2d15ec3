import type { PresenceStore } from '../sessions/presence-store.js';

/**
 * A user's sockets on this replica, counted: the store hears of the first (`arrive`) and of
 * the last (`depart`), the latter only once `graceMs` passed with none open again, so a
 * reconnect through a blip (or a reload) changes nothing anywhere. A second tab only counts.
 */
export class PresenceTracker {
  private readonly sockets = new Map<number, number>();
  private readonly grace = new Map<number, NodeJS.Timeout>();

  constructor(
    private readonly store: PresenceStore,
    private readonly graceMs: number,
    /** Whether a shutdown lets the grace run out (other replicas take the reconnects) or departs at once (one node). */
    private readonly drainWithGrace = true,
  ) {}

  connected(userId: number): void {
    const count = (this.sockets.get(userId) ?? 0) + 1;
    this.sockets.set(userId, count);
    if (count > 1) return;
    const pending = this.grace.get(userId);
    if (pending) {
      // Back within the grace: the store never heard it left.
      clearTimeout(pending);
      this.grace.delete(userId);
      return;
    }
    this.store.arrive(userId);
  }

  disconnected(userId: number): void {
    const count = (this.sockets.get(userId) ?? 0) - 1;
    if (count > 0) {
      this.sockets.set(userId, count);
      return;
    }
    this.sockets.delete(userId);
    if (count < 0) return;
    if (this.graceMs === 0) return this.store.depart(userId);
    const timer = setTimeout(() => {
      this.grace.delete(userId);
      this.store.depart(userId);
    }, this.graceMs);
    timer.unref();
    this.grace.set(userId, timer);
  }

  /** Users holding a socket here, or within their grace. */
  get size(): number {
    return this.sockets.size + this.grace.size;
  }

  /**
   * Shutdown: every user still here departs, at the end of their grace at the latest (sockets
   * were just closed with 1001 and reconnect elsewhere meanwhile, so nobody flaps). Resolves
   * once all have departed.
   */
  async drain(): Promise<void> {
    for (const userId of this.sockets.keys()) this.disconnectedAll(userId);
    if (!this.drainWithGrace) {
      for (const [userId, timer] of this.grace) {
        clearTimeout(timer);
        this.grace.delete(userId);
        this.store.depart(userId);
      }
    }
    if (this.grace.size === 0) return;
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (this.grace.size > 0) return;
        clearInterval(check);
        resolve();
      }, 20);
    });
  }

  private disconnectedAll(userId: number): void {
    this.sockets.set(userId, 1);
    this.disconnected(userId);
  }
}
