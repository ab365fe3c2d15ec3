import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { eq, sql } from 'drizzle-orm';
import { unauthenticated } from '../domain/errors.js';
import { Type } from 'typebox';
import { users } from '../db/schema/index.js';
import { errors } from '../http/schemas.js';
import { Text } from '../contract/common.js';

const SEARCH_LIMIT = 20;
/** LIKE treats % and _ as wildcards; a search for "a_b" means the literal text. */
const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

export const userRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/users/me/',
    { schema: { tags: ['users'], response: { 200: Type.Ref('User'), ...errors(401) } } },
    async (request) => {
      // The token is signed, but its user may be gone (a reset database): answer from the row.
      const [user] = await app.db
        .select({ id: users.id, username: users.username })
        .from(users)
        .where(eq(users.id, request.user.id));
      if (!user) throw unauthenticated('the token belongs to no user');
      return user;
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
      return app.db
        .select({ id: users.id, username: users.username })
        .from(users)
        .where(sql`lower(${users.username}) like ${`${escapeLike(prefix)}%`}`)
        // `~<~` is the ordering of the text_pattern_ops index that also serves the LIKE: the
        // index yields rows in order and the scan stops at 20. Ordering by plain lower()
        // sorted every match (a sequential scan of all users for an empty search).
        .orderBy(sql`lower(${users.username}) using ~<~`)
        .limit(SEARCH_LIMIT);
    },
  );
};
