import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { sql } from 'drizzle-orm';
import { Type } from 'typebox';
import { users } from '../db/schema/index.js';
import { conflict, databaseErrorCode, HttpError, UNIQUE_VIOLATION } from '../http/errors.js';
import { errors } from '../http/schemas.js';
import { Username } from '../users/schemas.js';
import { decoyHash, hashPassword, verifyPassword } from './passwords.js';

const Credentials = Type.Object({
  username: Username,
  password: Type.String({ minLength: 8, maxLength: 256 }),
});
const Session = Type.Object({ token: Type.String(), user: Type.Ref('User') });

export const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
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
        .select({ id: users.id, username: users.username, passwordHash: users.passwordHash })
        .from(users)
        .where(sql`lower(${users.username}) = lower(${username})`);
      // Unknown users cost a hash too: the answer and its timing reveal nothing.
      const valid = await verifyPassword(password, row?.passwordHash ?? (await decoyHash()));
      if (!row || !valid) throw new HttpError(401, 'invalid username or password');
      const user = { id: row.id, username: row.username };
      return { token: app.signToken(user), user };
    },
  );
};
