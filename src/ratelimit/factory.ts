import { createMemoryRateLimiter } from './rate-limiter-memory.js';
import { createRedisRateLimiter } from './rate-limiter-redis.js';
import type { RateLimiter, RateLimiterKind } from './rate-limiter.js';
import type { SentinelTarget } from '../redis/target.js';

/** What `createRateLimiter` needs; normally taken from the config (REDIS_URL, REDIS_CLUSTER). */
export interface CreateRateLimiterOptions {
  kind: RateLimiterKind;
  /** Required for `redis`; for `redis-cluster` a seed node and the credentials. */
  redisUrl?: string;
  /** `redis` only: follow the primary these Sentinels name. */
  sentinel?: SentinelTarget | undefined;
  /** REDIS_COMMAND_TIMEOUT_MS (a decision waits at most a second regardless). */
  commandTimeoutMs?: number | undefined;
  /** The clock windows are cut from; default `Date.now`. */
  now?: () => number;
}

/** Builds the rate limiter a deployment asked for. Redis limiters start connecting at once. */
export function createRateLimiter(options: CreateRateLimiterOptions): RateLimiter {
  const { kind, redisUrl, now, sentinel, commandTimeoutMs } = options;
  switch (kind) {
    case 'memory':
      return createMemoryRateLimiter({ now });
    case 'redis':
    case 'redis-cluster':
      if (!redisUrl) throw new Error(`rate limiter kind "${kind}" needs redisUrl`);
      return createRedisRateLimiter({
        url: redisUrl,
        cluster: kind === 'redis-cluster',
        sentinel: kind === 'redis' ? sentinel : undefined,
        commandTimeoutMs,
        now,
      });
    default:
      throw new Error(`unknown rate limiter kind: ${String(kind satisfies never)}`);
  }
}
