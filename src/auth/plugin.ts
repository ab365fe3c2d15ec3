import fastifyJwt from '@fastify/jwt';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { AuthUser } from '../domain/auth-user.js';
import { unauthenticated } from '../domain/errors.js';
import { bearerToken } from './bearer.js';

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: { sub: string; username: string };
    user: AuthUser;
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: 401 unless a valid bearer token is present; sets `request.user`. */
    authenticate(request: FastifyRequest): Promise<void>;
    /** The token's user, or null when it is missing, malformed, forged or expired. */
    verifyToken(token: string | undefined): AuthUser | null;
    signToken(user: AuthUser): string;
  }
}

const toUser = (payload: { sub: string; username: string }): AuthUser | null => {
  const id = Number(payload.sub);
  return Number.isSafeInteger(id) && id > 0 && typeof payload.username === 'string' ? { id, username: payload.username } : null;
};

/** JWT (HS256) bearer tokens: `sub` is the user id, `username` rides along, `exp` bounds it. */
export const authPlugin = fp<{ secret: string; expiresInSeconds: number }>(
  async (app, options) => {
    await app.register(fastifyJwt, {
      secret: options.secret,
      sign: { algorithm: 'HS256', expiresIn: options.expiresInSeconds },
      // Verified tokens are cached (fast-jwt keeps expiry in mind), sparing an HMAC per request.
      verify: { algorithms: ['HS256'], cache: 10_000 },
      formatUser: (payload) => toUser(payload) ?? { id: 0, username: '' },
    });

    app.decorate('signToken', (user: AuthUser) => app.jwt.sign({ sub: String(user.id), username: user.username }));

    app.decorate('verifyToken', (token: string | undefined) => {
      if (!token) return null;
      try {
        return toUser(app.jwt.verify<{ sub: string; username: string }>(token));
      } catch {
        return null;
      }
    });

    app.decorate('authenticate', async (request: FastifyRequest) => {
      const token = bearerToken(request.headers.authorization);
      if (!token) throw unauthenticated('missing bearer token (Authorization: Bearer <token>)');
      const user = app.verifyToken(token);
      if (!user) throw unauthenticated();
      request.user = user;
    });
  },
  { name: 'auth' },
);
