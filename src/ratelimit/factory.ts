import { createMemoryRateLimiter } from './rate-limiter-memory.js';
import { createRedisRateLimiter } from './rate-limiter-redis.js';
import type { RateLimiter } from './rate-limiter.js';

export function createRateLimiter(options: { redisUrl?: string | undefined; cluster: boolean }): RateLimiter {
  return options.redisUrl ? createRedisRateLimiter({ url: options.redisUrl, cluster: options.cluster }) : createMemoryRateLimiter();
}
