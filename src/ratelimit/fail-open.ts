import { DomainError } from '../domain/errors.js';
import { ALLOWED, type RateLimiter } from './rate-limiter.js';

/** An unreachable limiter is said in the log at most once per this interval (the metric counts each). */
export const UNAVAILABLE_WARN_INTERVAL_MS = 60_000;

export interface FailOpenOptions {
  logger: { warn(obj: unknown, msg?: string): void };
  /** Counts one decision waved through because the backend did not answer. */
  onUnavailable(scope: string): void;
  now?: () => number;
}

/**
 * The limits are a protection, not a correctness property: when the limiter's backend does
 * not answer (`unavailable`), a decision is allowed rather than turning a Redis outage into
 * refused sends, logins and registrations (DESIGN.md: losing Redis loses no data). Each such
 * decision is counted; the warning is logged at most once per `UNAVAILABLE_WARN_INTERVAL_MS`.
 * Any other error still rejects.
 */
export function failOpen(limiter: RateLimiter, options: FailOpenOptions): RateLimiter {
  const now = options.now ?? Date.now;
  let warnedAt = Number.NEGATIVE_INFINITY;
  let skipped = 0;
  return {
    async consume(scope, subject, limit) {
      try {
        return await limiter.consume(scope, subject, limit);
      } catch (error) {
        if (!(error instanceof DomainError) || error.kind !== 'unavailable') throw error;
        options.onUnavailable(scope);
        skipped += 1;
        const time = now();
        if (time - warnedAt >= UNAVAILABLE_WARN_INTERVAL_MS) {
          options.logger.warn({ err: error.cause ?? error, unchecked: skipped }, 'rate limiter unavailable: limits not enforced until it answers');
          warnedAt = time;
          skipped = 0;
        }
        return ALLOWED;
      }
    },
    close: () => limiter.close(),
  };
}
