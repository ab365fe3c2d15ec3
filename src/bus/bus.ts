/**
 * The event bus: how one replica's events reach every replica's sockets.
 *
 * Guarantees every implementation keeps (checked by test/bus-contract.test.ts):
 * - **At most once.** A payload may be lost (broker restart, network blip), never duplicated
 *   by the bus itself. Durable state lives in PostgreSQL; subscribers repair gaps from there.
 * - **Per-publisher order.** Payloads published on one channel by one bus instance, one after
 *   the other, arrive at each subscriber in that order.
 * - **Subscribed means subscribed.** Once `subscribe()` resolves, every payload published on
 *   that channel afterwards (by any instance) is delivered, unless lost as above.
 * - **Reference counting.** Many local listeners may share one channel; the broker-side
 *   subscription exists exactly while at least one listener is attached, so a replica receives
 *   only the traffic of channels its own sockets use.
 * - **Reset.** After a broker reconnect the bus re-subscribes every channel that still has
 *   listeners and then calls the `onReset` callbacks: anything published meanwhile may be lost.
 */
export interface Bus {
  /** Hands the payload to the broker (pipelined where possible). */
  publish(channel: string, payload: string): Promise<void>;
  /**
   * Attaches a listener; resolves once the broker-side subscription is active.
   * The returned function detaches it (idempotent); the last detach unsubscribes.
   */
  subscribe(channel: string, listener: BusListener): Promise<() => void>;
  /** Called after a reconnect once subscriptions are restored; returns a function that removes it. */
  onReset(callback: () => void): () => void;
  /** Channels this instance is subscribed to at the broker right now (for metrics and tests). */
  subscribedChannels(): string[];
  /** True when the broker connection is usable (readiness). */
  isHealthy(): boolean;
  close(): Promise<void>;
}

export type BusListener = (payload: string) => void;

/** The slice of a pino logger the buses use (reconnects, restores, throwing listeners). */
export interface BusLogger {
  warn(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
}

export type BusKind = 'memory' | 'redis' | 'redis-cluster';
