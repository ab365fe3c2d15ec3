/**
 * Fixed-window rate limits (API.md's AUTH_RATE_LIMIT and MESSAGE_RATE_LIMIT).
 *
 * Guarantees every implementation keeps (checked by test/rate-limiter-contract.test.ts):
 * - **Fixed one-minute windows.** A window starts at a multiple of `WINDOW_MS` on the
 *   limiter's clock; the count for a (scope, subject) pair starts again at zero in each one.
 * - **`limit` 0 is unlimited.** Such a call is always allowed and counts nothing.
 * - **Independent budgets.** Each (scope, subject) pair has its own count.
 * - **Never given back.** Every call counts one unit, allowed or not, and no unit is returned
 *   (a failed request still spent it), so counting is at least as strict as promised.
 * - **Where the count lives.** The Redis implementation (standalone or Cluster) shares one
 *   count between every instance on the same Redis, i.e. across replicas; the memory
 *   implementation counts per instance, i.e. per process (embedded mode, one node).
 * - **Backend unreachable.** `consume` on the Redis implementation rejects with
 *   an `unavailable` DomainError (src/domain/errors.ts), quickly (at once while it
 *   reconnects, within a second on a stalled connection); the service wraps it in
 *   `failOpen` (fail-open.ts), which allows the decision, counts and logs it.
 * - **Keys expire.** The window start is part of the Redis key and each key expires soon after
 *   its window ends, so old windows leave nothing behind; the memory implementation drops
 *   old windows once per window.
 * - `close()` is idempotent.
 */
export interface RateLimiter {
  /** Counts one unit for `subject` under `scope`; says whether it was within `limit`. */
  consume(scope: string, subject: string, limit: number): Promise<RateDecision>;
  close(): Promise<void>;
}

export interface RateDecision {
  allowed: boolean;
  /** Whole seconds until the window resets (for Retry-After), 1 to 60; 0 when allowed. */
  retryAfterSeconds: number;
}

export type RateLimiterKind = 'memory' | 'redis' | 'redis-cluster';

/** One minute: API.md states both limits per minute. */
export const WINDOW_MS = 60_000;

export const ALLOWED: RateDecision = Object.freeze({ allowed: true, retryAfterSeconds: 0 });

/** The start of the window that `time` (ms since the epoch) falls in. */
export const windowStartOf = (time: number): number => time - (time % WINDOW_MS);

/** The decision for the `count`-th unit of the window that started at `windowStart`. */
export function decide(count: number, limit: number, windowStart: number, now: number): RateDecision {
  if (count <= limit) return ALLOWED;
  return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((windowStart + WINDOW_MS - now) / 1000)) };
}
