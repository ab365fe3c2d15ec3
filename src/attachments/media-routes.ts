import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { sql } from 'drizzle-orm';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { bearerToken } from '../auth/bearer.js';
import { isMemberSql } from '../conversations/membership.js';
import type { AuthUser } from '../domain/auth-user.js';
import { forbidden, notFound, unauthenticated } from '../domain/errors.js';
import type { DatabaseHandle } from '../db/client.js';
import { toNumber } from '../db/sql.js';
import { HttpError } from '../http/errors.js';
import { BigId } from '../contract/common.js';
import { errors } from '../http/schemas.js';
import { ObjectNotFoundError } from '../storage/storage.js';
import { contentDisposition, isInlineSafe } from './disposition.js';
import { parseRange } from './range.js';

/** Presigned storage URLs (S3_SERVE_MODE=redirect) live just long enough to be followed. */
const REDIRECT_TTL_SECONDS = 60;

const MediaParams = Type.Object({
  id: BigId('attachment id'),
  // The name in the URL is cosmetic (for "save as"); the stored name is in Content-Disposition.
  '*': Type.String({ description: 'file name' }),
});
const MediaQuery = Type.Object({
  expires: Type.Optional(Type.String({ maxLength: 20, description: 'unix seconds, from the signed link' })),
  sig: Type.Optional(Type.String({ maxLength: 100, description: 'signature, from the signed link' })),
});

type Access = { via: 'link'; expires: number } | { via: 'token'; user: AuthUser };

interface ServableRow extends Record<string, unknown> {
  storage_key: string;
  filename: string;
  content_type: string;
  size: unknown;
  is_deleted: boolean;
  member: boolean;
}

/**
 * Serves attachment bytes at the URL `links.url()` builds. Allowed with a valid, unexpired
 * signature, or with a participant's bearer token. Never rendered in our origin: anything a
 * browser could run is a download, and every response carries nosniff and a sandboxing CSP.
 */
export const mediaRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addHook('onSend', async (_request, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('content-security-policy', "default-src 'none'; sandbox");
  });

  const schema = {
    tags: ['attachments'],
    summary: 'attachment bytes (signed link or participant bearer token); supports Range',
    security: [],
    params: MediaParams,
    querystring: MediaQuery,
    response: errors(400, 401, 403, 404, 416),
  };

  const serve = async (
    request: FastifyRequest<{ Params: { id: number; '*': string }; Querystring: { expires?: string; sig?: string } }>,
    reply: FastifyReply,
  ) => {
    const { id } = request.params;
    const access = await authorize(request, id);
    const row = await findServable(app.database, id, access.via === 'token' ? access.user.id : null);
    // A deleted message's attachment rows are gone; is_deleted is the belt to those braces.
    if (!row || row.is_deleted || (access.via === 'token' && !row.member)) throw notFound('attachment not found');

    const size = toNumber(row.size);
    const type = row.content_type === 'text/plain' ? 'text/plain; charset=utf-8' : row.content_type;
    const disposition = contentDisposition(isInlineSafe(row.content_type) ? 'inline' : 'attachment', row.filename);
    const nowSeconds = Math.floor(Date.now() / 1000);
    const cacheControl =
      access.via === 'link' ? `private, max-age=${Math.max(0, access.expires - nowSeconds)}` : 'private, no-cache';

    if (app.config.S3_SERVE_MODE === 'redirect') {
      // Type and disposition are signed into the URL: the bucket serves them as we would.
      const url = await app.storage.presignedUrl(row.storage_key, {
        expiresInSeconds: REDIRECT_TTL_SECONDS,
        contentDisposition: disposition,
        contentType: type,
      });
      if (url !== null) return reply.header('cache-control', 'private, no-store').redirect(url, 302);
    }

    // Content never changes under an id, so the id is a strong validator.
    const etag = `"a${id}-${size}"`;
    if (ifNoneMatch(request.headers['if-none-match'], etag)) {
      return reply.code(304).header('etag', etag).header('cache-control', cacheControl).send();
    }
    const ifRange = request.headers['if-range'];
    const range = ifRange === undefined || ifRange === etag ? parseRange(request.headers.range, size) : null;
    if (range === 'unsatisfiable') {
      throw new HttpError(416, `range not satisfiable for ${size} bytes`, { 'content-range': `bytes */${size}`, 'accept-ranges': 'bytes' });
    }

    reply
      .header('content-type', type)
      .header('content-disposition', disposition)
      .header('accept-ranges', 'bytes')
      .header('cache-control', cacheControl)
      .header('etag', etag)
      .header('content-length', String(range ? range.end - range.start + 1 : size));
    if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`);
    if (request.method === 'HEAD') return reply.send();

    const object = await app.storage.get(row.storage_key, range ?? undefined).catch((error: unknown) => {
      // The row outlived its object (deleted meanwhile): nothing to serve.
      if (error instanceof ObjectNotFoundError) throw notFound('attachment not found');
      throw error;
    });
    return reply.send(object.body);
  };

  // HEAD is its own route: Fastify's automatic one would zero Content-Length.
  app.get('/media/attachments/:id/*', { schema, exposeHeadRoute: false }, serve);
  app.head('/media/attachments/:id/*', { schema }, serve);

  /** A valid signed link, else a bearer token (checked for membership later), else 401/403. */
  async function authorize(request: FastifyRequest<{ Querystring: { expires?: string; sig?: string } }>, id: number): Promise<Access> {
    const { expires, sig } = request.query;
    if (expires !== undefined && sig !== undefined && /^\d{1,15}$/.test(expires)) {
      const expiresAt = Number(expires);
      if (app.links.verify(id, expiresAt, sig)) return { via: 'link', expires: expiresAt };
    }
    const header = request.headers.authorization;
    if (header !== undefined) {
      const claims = app.verifyToken(bearerToken(header));
      if (!claims || !(await app.sessions.isValid(claims))) throw unauthenticated();
      return { via: 'token', user: { id: claims.userId, username: claims.username } };
    }
    throw forbidden(expires !== undefined || sig !== undefined ? 'invalid or expired link' : 'a signed link or a bearer token is required');
  }
};

function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.trim() === '*' || header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

async function findServable(database: DatabaseHandle, attachmentId: number, userId: number | null): Promise<ServableRow | undefined> {
  const [row] = await database.query<ServableRow>(sql`
    select a.storage_key, a.filename, a.content_type, a.size, m.is_deleted,
           ${isMemberSql(sql`m.conversation_id`, userId ?? 0)} as member
      from attachments a join messages m on m.id = a.message_id
     where a.id = ${attachmentId}`);
  return row;
}
