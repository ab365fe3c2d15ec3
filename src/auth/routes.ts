import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { sql } from 'drizzle-orm';
import { Type } from 'typebox';
import { users } from '../db/schema/index.js';
import { conflict, unauthenticated } from '../domain/errors.js';
import { databaseErrorCode, UNIQUE_VIOLATION } from '../db/errors.js';
import { errors } from '../http/schemas.js';
import { Credentials, Session, WsTicket } from '../contract/users.js';
import { createPasswordChecker, hashPassword } from './passwords.js';
import { TICKET_TTL_SECONDS } from './plugin.js';
import { revokeAllTokens, revokeToken } from './revocation.js';

export const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const checkPassword = createPasswordChecker();
  app.post(
    '/auth/register/',
    {
      config: { authRateLimit: true },
      schema: { tags: ['auth'], body: Credentials, response: { 201: Session, ...errors(400, 409, 429) } },
    },
    async (request, reply) => {
      const { username, password } = request.body;
      const passwordHash = await hashPassword(password);
      try {
        const [user] = await app.db
          .insert(users)
          .values({ username, passwordHash })
          .returning({ id: users.id, username: users.username });
        if (!user) throw new Error('insert returned no row');
        return reply.code(201).send({ token: app.signToken(user), user });
      } catch (error) {
        // A deleted account keeps its row, so its username stays taken too.
        if (databaseErrorCode(error) === UNIQUE_VIOLATION) throw conflict('username: already taken');
        throw error;
      }
    },
  );

  app.post(
    '/auth/login/',
    {
      config: { authRateLimit: true },
      schema: { tags: ['auth'], body: Credentials, response: { 200: Session, ...errors(400, 401, 429) } },
    },
    async (request) => {
      const { username, password } = request.body;
      const [row] = await app.db
        .select({ id: users.id, username: users.username, passwordHash: users.passwordHash, validAfterMs: users.tokensValidAfterMs })
        .from(users)
        .where(sql`lower(${users.username}) = lower(${username}) and ${users.deletedAt} is null`);
      // Unknown users cost a hash too: the answer and its timing reveal nothing.
      const valid = await checkPassword(password, row?.passwordHash);
      if (!row || !valid) throw unauthenticated('invalid username or password');
      const user = { id: row.id, username: row.username };
      return { token: app.signToken(user, row.validAfterMs), user };
    },
  );

  const authenticated = { onRequest: app.authenticate };

  app.post(
    '/auth/logout/',
    { ...authenticated, schema: { tags: ['auth'], response: { 204: Type.Null(), ...errors(401) } } },
    async (request, reply) => {
      await revokeToken(app.database, request.claims!);
      await app.sessions.changed(request.user.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/auth/logout-all/',
    { ...authenticated, schema: { tags: ['auth'], response: { 204: Type.Null(), ...errors(401) } } },
    async (request, reply) => {
      await revokeAllTokens(app.database, request.user.id);
      await app.sessions.changed(request.user.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/auth/ws-ticket/',
    {
      ...authenticated,
      config: { writeRateLimit: 'token' },
      schema: { tags: ['auth'], response: { 201: WsTicket, ...errors(401, 429) } },
    },
    async (request, reply) => {
      const ticket = await app.issueTicket(request.claims!);
      return reply.code(201).send({ ticket, expires_in: TICKET_TTL_SECONDS });
    },
  );
};
