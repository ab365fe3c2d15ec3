import type { RateLimiter } from '../ratelimit/rate-limiter.js';
import type { Otel } from './sdk.js';

/** The Redis rate limiter with a client span per decision (one INCR and EXPIRE round trip). */
export function tracedRateLimiter(limiter: RateLimiter, otel: Otel): RateLimiter {
  const { api } = otel;
  return {
    consume: (scope, subject, limit) =>
      otel.inSpan(
        `rate_limit ${scope}`,
        { kind: api.SpanKind.CLIENT, attributes: { 'db.system.name': 'redis', 'db.operation.name': 'INCR', 'chat.rate_limit.scope': scope } },
        async (span) => {
          const decision = await limiter.consume(scope, subject, limit);
          span.setAttribute('chat.rate_limit.allowed', decision.allowed);
          return decision;
        },
      ),
    close: () => limiter.close(),
  };
}
