import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { and, eq, isNull, sql } from 'drizzle-orm';
import { forbidden, invalid, unauthenticated } from '../domain/errors.js';
import { Type } from 'typebox';
import { users } from '../db/schema/index.js';
import { errors } from '../http/schemas.js';
import { Text } from '../contract/common.js';
import { ChangePassword, DeleteAccount, Session } from '../contract/users.js';
import { hashPassword, verifyPassword } from '../auth/passwords.js';
import { revokeAllTokens } from '../auth/revocation.js';
import { deleteAccount } from './account.js';

const SEARCH_LIMIT = 20;
/** LIKE treats % and _ as wildcards; a search for "a_b" means the literal text. */
const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

export const userRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const minPrefix = app.config.USER_SEARCH_MIN_PREFIX;

  /** The caller's password hash, or 403 when `password` is not it. */
  const checkOwnPassword = async (userId: number, password: string) => {
    const [row] = await app.db
      .select({ passwordHash: users.passwordHash })
      .from(users)
      .where(and(eq(users.id, userId), isNull(users.deletedAt)));
    if (!row) throw unauthenticated('the token belongs to no user');
    if (!(await verifyPassword(password, row.passwordHash))) throw forbidden('password: incorrect');
  };

  app.get(
    '/users/me/',
    { schema: { tags: ['users'], response: { 200: Type.Ref('User'), ...errors(401) } } },
    async (request) => {
      const [user] = await app.db
        .select({ id: users.id, username: users.username })
        .from(users)
        .where(and(eq(users.id, request.user.id), isNull(users.deletedAt)));
      if (!user) throw unauthenticated('the token belongs to no user');
      return user;
    },
  );

  app.post(
    '/users/me/password/',
    {
      config: { writeRateLimit: 'token' },
      schema: { tags: ['users'], body: ChangePassword, response: { 200: Session, ...errors(400, 401, 403, 429) } },
    },
    async (request) => {
      const { current_password: current, new_password: next } = request.body;
      await checkOwnPassword(request.user.id, current);
      const passwordHash = await hashPassword(next);
      const validAfterMs = await app.database.transaction(async (query) => {
        await query(sql`update users set password_hash = ${passwordHash} where id = ${request.user.id}`);
        return revokeAllTokens(query, request.user.id);
      });
      await app.sessions.changed(request.user.id);
      return { token: app.signToken(request.user, validAfterMs), user: request.user };
    },
  );

  app.delete(
    '/users/me/',
    {
      config: { writeRateLimit: 'token' },
      schema: { tags: ['users'], body: DeleteAccount, response: { 204: Type.Null(), ...errors(400, 401, 403, 429) } },
    },
    async (request, reply) => {
      await checkOwnPassword(request.user.id, request.body.password);
      const keys = await deleteAccount(
        { database: app.database, messages: app.messages, membership: app.membership, sessionsChanged: (userId) => app.sessions.changed(userId) },
        request.user,
      );
      app.removeStoredFiles(keys);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/users/',
    {
      schema: {
        tags: ['users'],
        querystring: Type.Object({ search: Type.Optional(Text({ maxLength: 32 })) }),
        response: { 200: Type.Array(Type.Ref('User')), ...errors(400, 401) },
      },
    },
    async (request) => {
      const prefix = request.query.search?.trim().toLowerCase() ?? '';
      // An empty prefix would page through every username.
      if (prefix.length < minPrefix) throw invalid(`search: at least ${minPrefix} character${minPrefix === 1 ? '' : 's'}`);
      return app.db
        .select({ id: users.id, username: users.username })
        .from(users)
        .where(sql`lower(${users.username}) like ${`${escapeLike(prefix)}%`} and ${users.deletedAt} is null`)
        // `~<~` is the ordering of the text_pattern_ops index that also serves the LIKE: the
        // index yields rows in order and the scan stops at 20. Ordering by plain lower()
        // sorted every match (a sequential scan of all users for an empty search).
        .orderBy(sql`lower(${users.username}) using ~<~`)
        .limit(SEARCH_LIMIT);
    },
  );
};
