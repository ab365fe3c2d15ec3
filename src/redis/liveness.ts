/**
 * A liveness check for a Redis connection. A network that stalls (no FIN, no RST: a partition,
 * a hung proxy, a half-dead NAT entry) leaves a client `ready` forever: its commands time out
 * one by one but it never reconnects, and a subscriber, which sends nothing, never notices at
 * all and silently stops receiving. So the connection is pinged every `intervalMs`; one that
 * does not answer within `timeoutMs` is dropped and reconnects (the bus then restores its
 * subscriptions and tells the rooms to resync, so nothing published meanwhile is lost for good).
 * Driver-free: any client with ioredis' `status`, `ping`, `disconnect(reconnect)` and `close`.
 */

export interface Pingable {
  readonly status: string;
  ping(): Promise<unknown>;
  disconnect(reconnect?: boolean): void;
  on(event: 'close', listener: () => void): unknown;
}

export interface LivenessOptions {
  intervalMs: number;
  timeoutMs: number;
  /** Called when a missed ping drops the connection (logs, metrics). */
  onDead?(): void;
}

/** Starts pinging; the returned function stops it. The timer never keeps a process alive. */
export function watchLiveness(client: Pingable, options: LivenessOptions): () => void {
  // Bumped on every close: a ping sent on an earlier connection says nothing about this one.
  let epoch = 0;
  let pinging = false;
  client.on('close', () => {
    epoch += 1;
  });
  const check = (): void => {
    if (pinging || client.status !== 'ready') return;
    pinging = true;
    const sentOn = epoch;
    let answered = false;
    const deadline = setTimeout(() => {
      pinging = false;
      if (answered || sentOn !== epoch || client.status !== 'ready') return;
      options.onDead?.();
      client.disconnect(true);
    }, options.timeoutMs);
    deadline.unref();
    client.ping().then(
      () => {
        answered = true;
        pinging = false;
        clearTimeout(deadline);
      },
      // A rejection (timeout, closed connection) is judged by the deadline above.
      () => {},
    );
  };
  const timer = setInterval(check, options.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
