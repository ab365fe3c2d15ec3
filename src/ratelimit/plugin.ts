import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { RateLimiter } from './rate-limiter.js';
import { rateLimited } from '../domain/errors.js';

/** Per-user limits on writes other than sends, each its own budget and variable. */
export type WriteLimit = 'edit' | 'conversation' | 'member' | 'upload' | 'token';

declare module 'fastify' {
  interface FastifyInstance {
    /** Counts one message for the user (REST and WebSocket alike); throws 429 past the limit. */
    limitMessages(userId: number): Promise<void>;
    /** Counts one write of the kind for the user (REST and WebSocket alike); throws 429 past the limit. */
    limitWrites(kind: WriteLimit, userId: number): Promise<void>;
  }
  interface FastifyContextConfig {
    /** Login/register: AUTH_RATE_LIMIT per client IP. */
    authRateLimit?: boolean;
    /** Sends: MESSAGE_RATE_LIMIT per user. */
    messageRateLimit?: boolean;
    /** Other writes: the kind's limit per user (EDIT_, CONVERSATION_, MEMBER_, UPLOAD_, TOKEN_RATE_LIMIT). */
    writeRateLimit?: WriteLimit;
  }
}

/** API.md's limits, shared across replicas through the rate limiter's backend. */
export const rateLimitPlugin = fp<{ limiter: RateLimiter }>(
  async (app: FastifyInstance, { limiter }) => {
    const { AUTH_RATE_LIMIT, MESSAGE_RATE_LIMIT } = app.config;
    const writeLimits: Record<WriteLimit, number> = {
      edit: app.config.EDIT_RATE_LIMIT,
      conversation: app.config.CONVERSATION_RATE_LIMIT,
      member: app.config.MEMBER_RATE_LIMIT,
      upload: app.config.UPLOAD_RATE_LIMIT,
      token: app.config.TOKEN_RATE_LIMIT,
    };
    const enforce = async (scope: string, subject: string, limit: number) => {
      const decision = await limiter.consume(scope, subject, limit);
      if (!decision.allowed) {
        app.metrics.rateLimited.inc({ scope });
        throw rateLimited(decision.retryAfterSeconds);
      }
    };
    app.decorate('limitMessages', (userId: number) => enforce('msg', String(userId), MESSAGE_RATE_LIMIT));
    app.decorate('limitWrites', (kind: WriteLimit, userId: number) => enforce(kind, String(userId), writeLimits[kind]));
    // Only the routes that ask for a limit get the hook: the busiest reads pay nothing.
    const authLimit = async (request: FastifyRequest) => enforce('auth', request.ip, AUTH_RATE_LIMIT);
    const messageLimit = async (request: FastifyRequest) => {
      if (request.user) await app.limitMessages(request.user.id);
    };
    const writeLimit = (kind: WriteLimit) => async (request: FastifyRequest) => {
      if (request.user) await app.limitWrites(kind, request.user.id);
    };
    app.addHook('onRoute', (route) => {
      const config = route.config as { authRateLimit?: boolean; messageRateLimit?: boolean; writeRateLimit?: WriteLimit } | undefined;
      const hook = config?.authRateLimit
        ? authLimit
        : config?.messageRateLimit
          ? messageLimit
          : config?.writeRateLimit
            ? writeLimit(config.writeRateLimit)
            : undefined;
      if (!hook) return;
      const existing = route.preHandler === undefined ? [] : Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler];
      route.preHandler = [...existing, hook];
    });
  },
  { name: 'rate-limits', dependencies: ['infrastructure'] },
);
