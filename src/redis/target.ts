/**
 * Where the service's Redis clients connect and how long they wait, in one shape for the bus,
 * the rate limiter and the session stores (from REDIS_URL, REDIS_CLUSTER, REDIS_SENTINELS,
 * REDIS_SENTINEL_NAME and REDIS_COMMAND_TIMEOUT_MS). Driver-free: each backend turns it into
 * its client's options.
 */

/** Sentinels to ask for the current primary of `name`. */
export interface SentinelTarget {
  nodes: { host: string; port: number }[];
  name: string;
}

/** How a standalone client follows Sentinel: options spread into ioredis' own (none without Sentinel). */
export interface SentinelClientOptions {
  sentinels?: { host: string; port: number }[];
  name?: string;
  failoverDetector?: boolean;
  sentinelCommandTimeout?: number;
}

/** Default longest wait for a Redis reply (REDIS_COMMAND_TIMEOUT_MS). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 5_000;

/**
 * The client follows the primary the Sentinels name: on connect (and every reconnect) it asks
 * them where it is and checks the server's role, and `failoverDetector` listens for their
 * `+switch-master`, so a promotion moves the client at once rather than when the old primary's
 * connection breaks. A Sentinel that stalls is given up on after the command timeout.
 */
export function sentinelOptions(sentinel: SentinelTarget | undefined, commandTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS): SentinelClientOptions {
  if (!sentinel) return {};
  return {
    sentinels: sentinel.nodes.map((node) => ({ ...node })),
    name: sentinel.name,
    failoverDetector: true,
    sentinelCommandTimeout: commandTimeoutMs,
  };
}
