import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { sql } from 'drizzle-orm';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { AuthUser } from '../auth/plugin.js';
import type { DatabaseHandle } from '../db/client.js';
import { isoTime, toNumber } from '../db/sql.js';
import { attachmentView, type AttachmentRow } from '../events/views.js';
import { badRequest, conflict, forbidden, HttpError, notFound } from '../http/errors.js';
import { errors, MessageParams } from '../http/schemas.js';
import { ObjectTooLargeError } from '../storage/storage.js';
import { sanitizeFilename } from './disposition.js';
import { storeUpload, UploadSourceError } from './upload.js';

/**
 * A multipart body carries the file plus boundaries and part headers. Beyond this allowance
 * over MAX_ATTACHMENT_BYTES a declared Content-Length cannot hold an acceptable upload under
 * the parser limits below (10 parts, 8 small fields), so it is refused before reading it.
 */
const MULTIPART_OVERHEAD_BYTES = 1024 * 1024;
/**
 * After an early refusal the rest of the body is read and dropped (so the client reads the
 * 413 instead of a reset connection); past this much the connection is closed instead.
 */
const DRAIN_LIMIT_BYTES = 32 * 1024 * 1024;

const tooLarge = (maxBytes: number) => new HttpError(413, `file: larger than the limit of ${maxBytes} bytes`);

/** REST for a message's attachments: list, and a streamed multipart upload. */
export const attachmentRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const maxBytes = app.config.MAX_ATTACHMENT_BYTES;
  // In this plugin's scope only: no other route accepts multipart bodies.
  await app.register(multipart, {
    limits: {
      files: 1,
      // One byte over the limit, so that a file of exactly the limit is not "truncated";
      // the limit itself is enforced by storage.put while streaming.
      fileSize: maxBytes + 1,
      fields: 8,
      fieldSize: 1024,
      fieldNameSize: 100,
      parts: 10,
      headerPairs: 100,
    },
  });

  app.get(
    '/conversations/:id/messages/:mid/attachments/',
    {
      schema: {
        tags: ['attachments'],
        params: MessageParams,
        response: { 200: Type.Array(Type.Ref('Attachment')), ...errors(400, 401, 404) },
      },
    },
    async (request) => {
      const { id, mid } = request.params;
      const rows = await listAttachments(app.database, request.user, id, mid);
      return rows.map((row) => attachmentView(row, app.links));
    },
  );

  app.post(
    '/conversations/:id/messages/:mid/attachments/',
    {
      schema: {
        tags: ['attachments'],
        summary: 'multipart/form-data with one file in the field `file`',
        consumes: ['multipart/form-data'],
        params: MessageParams,
        response: { 201: Type.Ref('Attachment'), ...errors(400, 401, 403, 404, 409, 413, 415) },
      },
    },
    async (request, reply) => {
      const { id, mid } = request.params;
      try {
        // Everything that can be refused without the body is refused before reading it.
        await checkCanAttach(app.database, request.user, id, mid);
        if (!request.isMultipart()) throw new HttpError(415, 'body: expected multipart/form-data with a field `file`');
        const declared = Number(request.headers['content-length']);
        if (declared > maxBytes + MULTIPART_OVERHEAD_BYTES) throw tooLarge(maxBytes);

        const part = await request.file().catch((error: unknown) => {
          throw asClientError(error, 'body: malformed multipart/form-data');
        });
        if (!part) throw badRequest('file: missing (send multipart/form-data with a field `file`)');
        if (part.fieldname !== 'file') {
          part.file.destroy();
          throw badRequest(`file: expected the file in the field \`file\`, got \`${part.fieldname.slice(0, 100)}\``);
        }

        const stored = await storeUpload(app.storage, part.file, maxBytes).catch((error: unknown) => {
          if (error instanceof ObjectTooLargeError) throw tooLarge(maxBytes);
          if (error instanceof UploadSourceError) throw asClientError(error.cause, 'body: the upload was cut off or malformed');
          throw error;
        });
        if (part.file.truncated) {
          // Backstop: the parser cut the file, so what storage holds is not the whole file.
          app.removeStoredFiles([stored.storageKey]);
          throw tooLarge(maxBytes);
        }

        try {
          const attachment = await app.writePath.addAttachment(request.user, id, mid, {
            storageKey: stored.storageKey,
            filename: sanitizeFilename(part.filename),
            contentType: stored.contentType,
            size: stored.size,
          });
          return reply.code(201).send(attachment);
        } catch (error) {
          // No row (deleted meanwhile, database down): the object must not outlive the request.
          await app.storage.delete(stored.storageKey).catch((cleanupError: unknown) => {
            request.log.warn({ err: cleanupError, key: stored.storageKey }, 'orphaned attachment object not removed');
          });
          throw error;
        }
      } catch (error) {
        discardRemainingBody(request);
        throw error;
      }
    },
  );
};

/** Rows of a message's attachments; 404 for non-participants and unknown messages. */
async function listAttachments(database: DatabaseHandle, user: AuthUser, conversationId: number, messageId: number): Promise<AttachmentRow[]> {
  const rows = await database.query<AttachmentRow & { member: boolean | null; message_id: unknown; [column: string]: unknown }>(sql`
    select (select true from participants p where p.conversation_id = ${conversationId} and p.user_id = ${user.id}) as member,
           m.id as message_id, a.id, a.filename, a.content_type, a.size, ${isoTime(sql`a.created_at`)} as uploaded_at
      from (select 1) as one
      left join messages m on m.id = ${messageId} and m.conversation_id = ${conversationId}
      left join attachments a on a.message_id = m.id and not m.is_deleted
     order by a.id`);
  const [first] = rows;
  if (!first?.member) throw notFound('conversation not found');
  if (first.message_id === null) throw notFound('message not found');
  return rows.filter((row) => row.id !== null);
}

/**
 * The write path checks all of this again under the conversation lock; this cheap read only
 * spares a doomed upload its bytes.
 */
async function checkCanAttach(database: DatabaseHandle, user: AuthUser, conversationId: number, messageId: number): Promise<void> {
  const [row] = await database.query<{ member: boolean | null; sender_id: unknown; is_deleted: boolean | null }>(sql`
    select (select true from participants p where p.conversation_id = ${conversationId} and p.user_id = ${user.id}) as member,
           m.sender_id, m.is_deleted
      from (select 1) as one
      left join messages m on m.id = ${messageId} and m.conversation_id = ${conversationId}`);
  if (!row?.member) throw notFound('conversation not found');
  if (row.sender_id === null) throw notFound('message not found');
  if (toNumber(row.sender_id) !== user.id) throw forbidden('only the sender of a message may attach files to it');
  if (row.is_deleted) throw conflict('a deleted message takes no attachments');
}

/** A 4xx from the multipart parser keeps its status; anything else it throws is a 400. */
function asClientError(error: unknown, message: string): unknown {
  const status = (error as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return error;
  return badRequest(message);
}

/**
 * When a request is refused mid-body, the client is usually still sending. Reading the rest
 * and dropping it lets it see the error response and keeps the connection usable; a client
 * that keeps sending past the drain limit is cut off.
 */
function discardRemainingBody(request: FastifyRequest): void {
  const raw = request.raw;
  // Not `complete`: a body fully received but not read stays buffered and never ends.
  if (raw.readableEnded || raw.destroyed) return;
  raw.unpipe();
  let budget = DRAIN_LIMIT_BYTES;
  raw.on('data', (chunk: Buffer) => {
    budget -= chunk.length;
    if (budget < 0) raw.socket.destroy();
  });
  raw.resume();
}
