import { Cluster, Redis } from 'ioredis';
import { rateLimitKey } from '../redis/names.js';
import { unavailable } from '../domain/errors.js';
import { ALLOWED, decide, type RateLimiter, WINDOW_MS } from './rate-limiter.js';

/**
 * Shared by every replica: INCR on a key per subject and window, expiring with the window.
 * One round trip per decision, auto-pipelined with everything else this replica sends.
 */
export function createRedisRateLimiter(options: { url: string; cluster: boolean }): RateLimiter {
  const redisOptions = { enableAutoPipelining: true, maxRetriesPerRequest: 1, lazyConnect: false };
  const client = options.cluster ? new Cluster([options.url], { redisOptions }) : new Redis(options.url, redisOptions);
  client.on('error', () => {
    // Reconnects on its own; a decision made while Redis is down rejects (the caller answers 503).
  });
  return {
    async consume(scope, subject, limit) {
      if (limit === 0) return ALLOWED;
      const time = Date.now();
      const windowStart = time - (time % WINDOW_MS);
      const key = rateLimitKey(scope, subject, windowStart);
      let count: unknown;
      try {
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
      client.disconnect();
    },
  };
}
