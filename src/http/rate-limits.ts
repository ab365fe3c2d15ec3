import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { RateLimiter } from '../ratelimit/rate-limiter.js';
import { tooManyRequests } from './errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Counts one message for the user (REST and WebSocket alike); throws 429 past the limit. */
    limitMessages(userId: number): Promise<void>;
  }
  interface FastifyContextConfig {
    /** Login/register: AUTH_RATE_LIMIT per client IP. */
    authRateLimit?: boolean;
    /** Sends: MESSAGE_RATE_LIMIT per user. */
    messageRateLimit?: boolean;
  }
}

/** API.md's two limits, shared across replicas through the rate limiter's backend. */
export const rateLimitPlugin = fp<{ limiter: RateLimiter }>(
  async (app: FastifyInstance, { limiter }) => {
    const { AUTH_RATE_LIMIT, MESSAGE_RATE_LIMIT } = app.config;
    const enforce = async (scope: string, subject: string, limit: number) => {
      const decision = await limiter.consume(scope, subject, limit);
      if (!decision.allowed) {
        app.metrics.rateLimited.inc({ scope });
        throw tooManyRequests(decision.retryAfterSeconds);
      }
    };
    app.decorate('limitMessages', (userId: number) => enforce('msg', String(userId), MESSAGE_RATE_LIMIT));
    app.addHook('preHandler', async (request: FastifyRequest) => {
      const config = request.routeOptions.config;
      if (config.authRateLimit) await enforce('auth', request.ip, AUTH_RATE_LIMIT);
      else if (config.messageRateLimit && request.user) await app.limitMessages(request.user.id);
    });
  },
  { name: 'rate-limits', dependencies: ['infrastructure'] },
);
