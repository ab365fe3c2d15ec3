import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { invalid, rateLimited } from '../domain/errors.js';
import { HttpError } from '../http/errors.js';
import { errors, MessageParams } from '../http/schemas.js';
import { ObjectTooLargeError } from '../storage/storage.js';
import { sanitizeFilename } from './disposition.js';
import { storeUpload, UploadSourceError } from './upload.js';
import { UploadGate } from './upload-gate.js';

/** Seconds a client refused for too many parallel uploads waits: one upload takes about that. */
const UPLOAD_BUSY_RETRY_SECONDS = 1;

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
  const gate = new UploadGate(app.config.MAX_UPLOADS_PER_USER, app.config.MAX_UPLOADS);
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
      return app.attachments.list(request.user, id, mid);
    },
  );

  app.post(
    '/conversations/:id/messages/:mid/attachments/',
    {
      config: { writeRateLimit: 'upload' },
      schema: {
        tags: ['attachments'],
        summary: 'multipart/form-data with one file in the field `file`',
        consumes: ['multipart/form-data'],
        params: MessageParams,
        response: { 201: Type.Ref('Attachment'), ...errors(400, 401, 403, 404, 409, 413, 415, 429) },
      },
    },
    async (request, reply) => {
      const { id, mid } = request.params;
      let release: (() => void) | null = null;
      try {
        release = gate.tryEnter(request.user.id);
        if (!release) {
          app.metrics.rateLimited.inc({ scope: 'upload_concurrency' });
          throw rateLimited(UPLOAD_BUSY_RETRY_SECONDS);
        }
        // Everything that can be refused without the body is refused before reading it.
        await app.attachments.checkCanAttach(request.user, id, mid);
        if (!request.isMultipart()) throw new HttpError(415, 'body: expected multipart/form-data with a field `file`');
        const declared = Number(request.headers['content-length']);
        if (declared > maxBytes + MULTIPART_OVERHEAD_BYTES) throw tooLarge(maxBytes);

        const part = await request.file().catch((error: unknown) => {
          throw asClientError(error, 'body: malformed multipart/form-data');
        });
        if (!part) throw invalid('file: missing (send multipart/form-data with a field `file`)');
        if (part.fieldname !== 'file') {
          part.file.destroy();
          throw invalid(`file: expected the file in the field \`file\`, got \`${part.fieldname.slice(0, 100)}\``);
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
          const attachment = await app.attachments.add(request.user, id, mid, {
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
      } finally {
        release?.();
      }
    },
  );
};

/** A 4xx from the multipart parser keeps its status; anything else it throws is a 400. */
function asClientError(error: unknown, message: string): unknown {
  const status = (error as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return error;
  return invalid(message);
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
