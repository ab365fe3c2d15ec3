import { ALLOWED, decide, type RateLimiter, WINDOW_MS, windowStartOf } from './rate-limiter.js';

export interface MemoryRateLimiterOptions {
  /** The clock windows are cut from (ms since the epoch); tests inject one. */
  now?: () => number;
}

/** One process only: the embedded default. */
export function createMemoryRateLimiter(options: MemoryRateLimiterOptions = {}): RateLimiter {
  const now = options.now ?? Date.now;
  const counters = new Map<string, { windowStart: number; count: number }>();
  let sweepAt = 0;
  return {
    async consume(scope, subject, limit) {
      if (limit === 0) return ALLOWED;
      const time = now();
      const windowStart = windowStartOf(time);
      // Old windows are dropped once per window, so the map holds only current subjects.
      if (time >= sweepAt) {
        for (const [key, counter] of counters) if (counter.windowStart < windowStart) counters.delete(key);
        sweepAt = windowStart + WINDOW_MS;
      }
      const key = `${scope}:${subject}`;
      let counter = counters.get(key);
      if (!counter || counter.windowStart !== windowStart) {
        counter = { windowStart, count: 0 };
        counters.set(key, counter);
      }
      counter.count += 1;
      return decide(counter.count, limit, windowStart, time);
    },
    async close() {
      counters.clear();
    },
  };
}
