import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { RateLimiter } from './rate-limiter.js';
import { rateLimited } from '../domain/errors.js';

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
        throw rateLimited(decision.retryAfterSeconds);
      }
    };
    app.decorate('limitMessages', (userId: number) => enforce('msg', String(userId), MESSAGE_RATE_LIMIT));
    // Only the routes that ask for a limit get the hook: the busiest reads pay nothing.
    const authLimit = async (request: FastifyRequest) => enforce('auth', request.ip, AUTH_RATE_LIMIT);
    const messageLimit = async (request: FastifyRequest) => {
      if (request.user) await app.limitMessages(request.user.id);
    };
    app.addHook('onRoute', (route) => {
      const config = route.config as { authRateLimit?: boolean; messageRateLimit?: boolean } | undefined;
      const hook = config?.authRateLimit ? authLimit : config?.messageRateLimit ? messageLimit : undefined;
      if (!hook) return;
      const existing = route.preHandler === undefined ? [] : Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler];
      route.preHandler = [...existing, hook];
    });
  },
  { name: 'rate-limits', dependencies: ['infrastructure'] },
);
