import { Cluster, Redis } from 'ioredis';
import { watchLiveness } from '../redis/liveness.js';
import { rateLimitKey } from '../redis/names.js';
import { DEFAULT_COMMAND_TIMEOUT_MS, sentinelOptions, type SentinelTarget } from '../redis/target.js';
import { unavailable } from '../domain/errors.js';
import { ALLOWED, decide, type RateLimiter, WINDOW_MS, windowStartOf } from './rate-limiter.js';

export interface RedisRateLimiterOptions {
  /** `redis://` or `rediss://` URL; in cluster mode a seed node, and the source of credentials. */
  url: string;
  /** `url` is a seed node of a Redis Cluster. */
  cluster?: boolean;
  /** Standalone only: follow the primary these Sentinels name. */
  sentinel?: SentinelTarget | undefined;
  /** REDIS_COMMAND_TIMEOUT_MS: the liveness ping interval; a decision itself waits at most a second. */
  commandTimeoutMs?: number | undefined;
  /** The clock windows are cut from (ms since the epoch); tests inject one. */
  now?: () => number;
}

/**
 * Shared by every replica: INCR on a key per subject and window, expiring with the window.
 * One round trip per decision, auto-pipelined with everything else this replica sends.
 */
export function createRedisRateLimiter(options: RedisRateLimiterOptions): RateLimiter {
  const now = options.now ?? Date.now;
  const pingMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  // A stalled connection (no FIN) must not hold every send: a decision gives up after a second.
  const commandTimeout = Math.min(1_000, pingMs);
  const redisOptions = { enableAutoPipelining: true, maxRetriesPerRequest: 1, lazyConnect: false, commandTimeout, connectionName: 'chat-ratelimit' };
  const client = options.cluster
    ? new Cluster([options.url], { redisOptions })
    : new Redis(options.url, { ...redisOptions, ...sentinelOptions(options.sentinel, pingMs) });
  // And it reconnects rather than failing every decision open until TCP gives up.
  const stopLiveness = client instanceof Redis ? watchLiveness(client, { intervalMs: pingMs, timeoutMs: pingMs }) : () => {};
  let readyOnce = false;
  client.on('ready', () => (readyOnce = true));
  client.on('error', () => {
    // Reconnects on its own; a decision made while Redis is down rejects as unavailable.
  });
  return {
    async consume(scope, subject, limit) {
      if (limit === 0) return ALLOWED;
      const time = now();
      const windowStart = windowStartOf(time);
      const key = rateLimitKey(scope, subject, windowStart);
      let count: unknown;
      try {
        // Once connected, a decision while reconnecting fails at once rather than waiting out a backoff.
        if (readyOnce && client.status !== 'ready') throw new Error(`Redis ${client.status}`);
        // Longer than the window: a replica whose clock lags a little still finds its window's count.
        const [[incrError, incremented] = [null, 0], [expireError] = [null]] =
          (await client.multi().incr(key).pexpire(key, WINDOW_MS * 2).exec()) ?? [];
        if (incrError || expireError) throw incrError ?? expireError;
        count = incremented;
      } catch (error) {
        throw unavailable('redis', error);
      }
      return decide(Number(count), limit, windowStart, time);
    },
    async close() {
      stopLiveness();
      client.disconnect();
    },
  };
}
