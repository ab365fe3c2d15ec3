/**
 * Fixed-window rate limits shared by every replica (through Redis when it is configured).
 * A window is one minute; `limit` 0 means unlimited. Counting is at least as strict as
 * promised: a consumed unit is never given back.
 */
export interface RateLimiter {
  /** Counts one unit for `subject` under `scope`; says whether it was within the limit. */
  consume(scope: string, subject: string, limit: number): Promise<RateDecision>;
  close(): Promise<void>;
}

export interface RateDecision {
  allowed: boolean;
  /** Seconds until the window resets (for Retry-After); 0 when allowed. */
  retryAfterSeconds: number;
}

export const WINDOW_MS = 60_000;

export const ALLOWED: RateDecision = Object.freeze({ allowed: true, retryAfterSeconds: 0 });

/** The decision for the `count`-th unit of the window that started at `windowStart`. */
export function decide(count: number, limit: number, windowStart: number, now: number): RateDecision {
  if (count <= limit) return ALLOWED;
  return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((windowStart + WINDOW_MS - now) / 1000)) };
}
