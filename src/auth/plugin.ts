import { randomBytes } from 'node:crypto';
import fastifyJwt from '@fastify/jwt';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { AuthUser } from '../domain/auth-user.js';
import { unauthenticated } from '../domain/errors.js';
import type { TicketStore } from '../sessions/ticket-store.js';
import { bearerToken } from './bearer.js';
import { SessionCache, type TokenClaims } from './session-cache.js';

export type { TokenClaims } from './session-cache.js';

interface Payload {
  sub: string;
  username: string;
  jti?: string;
  iat?: number;
  exp?: number;
  iat_ms?: number;
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: Payload;
    user: AuthUser;
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: 401 unless a valid, unrevoked bearer token is present; sets `request.user` and `request.claims`. */
    authenticate(request: FastifyRequest): Promise<void>;
    /** The token's claims, or null when it is missing, malformed, forged or expired (revocation is not checked). */
    verifyToken(token: string | undefined): TokenClaims | null;
    /** A socket's caller: a `?ticket=` (single use) or a token, checked against revocation; null when refused. */
    authenticateSocket(request: FastifyRequest): Promise<TokenClaims | null>;
    /**
     * A fresh token with its own id. `afterMs`: the user's tokens-valid-after time, so a token
     * issued in the same millisecond as a logout-all still counts.
     */
    signToken(user: AuthUser, afterMs?: number): string;
    /** A single-use socket ticket standing for the given token's session. */
    issueTicket(claims: TokenClaims): Promise<string>;
    sessions: SessionCache;
  }
  interface FastifyRequest {
    claims: TokenClaims | undefined;
  }
}

/** API.md: a ticket is good for 30 seconds. */
export const TICKET_TTL_SECONDS = 30;

const toClaims = (payload: Payload): TokenClaims | null => {
  const id = Number(payload.sub);
  if (!Number.isSafeInteger(id) || id <= 0 || typeof payload.username !== 'string') return null;
  const issuedAtMs = typeof payload.iat_ms === 'number' ? payload.iat_ms : typeof payload.iat === 'number' ? payload.iat * 1000 : 0;
  return {
    userId: id,
    username: payload.username,
    jti: typeof payload.jti === 'string' && payload.jti ? payload.jti : undefined,
    issuedAtMs,
    expiresAtMs: typeof payload.exp === 'number' ? payload.exp * 1000 : Date.now(),
  };
};

const userOf = (claims: TokenClaims): AuthUser => ({ id: claims.userId, username: claims.username });

/** A ticket's stored form: the claims of the token it was issued for. */
const isClaims = (value: unknown): value is TokenClaims => {
  const claims = value as Partial<TokenClaims> | null;
  return typeof claims?.userId === 'number' && typeof claims.username === 'string' && typeof claims.issuedAtMs === 'number';
};

/**
 * JWT (HS256) bearer tokens: `sub` is the user id, `username` rides along, `jti` names the
 * token (logout revokes it), `iat_ms` orders it against logout-all, `exp` bounds it. A token
 * counts while the replica's session cache says so (src/auth/session-cache.ts): no database
 * query per request once the user's state is cached.
 */
export const authPlugin = fp<{ secret: string; expiresInSeconds: number; tickets: TicketStore }>(
  async (app, options) => {
    await app.register(fastifyJwt, {
      secret: options.secret,
      sign: { algorithm: 'HS256', expiresIn: options.expiresInSeconds },
      // Verified tokens are cached (fast-jwt keeps expiry in mind), sparing an HMAC per request.
      verify: { algorithms: ['HS256'], cache: 10_000 },
      formatUser: (payload) => {
        const claims = toClaims(payload);
        return claims ? userOf(claims) : { id: 0, username: '' };
      },
    });

    const sessions = new SessionCache(app.database, app.bus, app.log);
    await sessions.start();
    app.decorate('sessions', sessions);
    app.addHook('onClose', async () => sessions.close());
    app.decorateRequest('claims', undefined);

    app.decorate('signToken', (user: AuthUser, afterMs = 0) =>
      app.jwt.sign({
        sub: String(user.id),
        username: user.username,
        jti: randomBytes(16).toString('base64url'),
        iat_ms: Math.max(Date.now(), afterMs + 1),
      }),
    );

    app.decorate('verifyToken', (token: string | undefined) => {
      if (!token) return null;
      try {
        return toClaims(app.jwt.verify<Payload>(token));
      } catch {
        return null;
      }
    });

    app.decorate('authenticate', async (request: FastifyRequest) => {
      const token = bearerToken(request.headers.authorization);
      if (!token) throw unauthenticated('missing bearer token (Authorization: Bearer <token>)');
      const claims = app.verifyToken(token);
      if (!claims || !(await sessions.isValid(claims))) throw unauthenticated();
      request.claims = claims;
      request.user = userOf(claims);
    });

    app.decorate('issueTicket', (claims: TokenClaims) => options.tickets.issue(JSON.stringify(claims), TICKET_TTL_SECONDS));

    app.decorate('authenticateSocket', async (request: FastifyRequest) => {
      const query = request.query as Record<string, unknown>;
      let claims: TokenClaims | null = null;
      if (typeof query.ticket === 'string') {
        const data = await options.tickets.consume(query.ticket);
        const parsed: unknown = data === null ? null : JSON.parse(data);
        claims = isClaims(parsed) ? parsed : null;
      } else {
        const token = typeof query.token === 'string' && query.token ? query.token : bearerToken(request.headers.authorization);
        claims = app.verifyToken(token);
      }
      if (!claims || claims.expiresAtMs <= Date.now()) return null;
      return (await sessions.isValid(claims)) ? claims : null;
    });
  },
  { name: 'auth', dependencies: ['infrastructure'] },
);
