import { randomUUID } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { fileTypeFromBuffer } from 'file-type';
import { ObjectTooLargeError, type Storage } from '../storage/storage.js';

/** What file-type needs to recognise most formats (its `reasonableDetectionSizeInBytes`). */
export const SNIFF_BYTES = 4100;
const OCTET_STREAM = 'application/octet-stream';

export interface StoredUpload {
  storageKey: string;
  contentType: string;
  size: number;
}

/** The upload's own stream failed (client aborted, malformed multipart): the client's fault. */
export class UploadSourceError extends Error {
  constructor(override readonly cause: unknown) {
    super('the upload stream failed', { cause });
    this.name = 'UploadSourceError';
  }
}

/**
 * Streams one upload into storage: the first few KiB are read to detect the type from the
 * bytes (the client's claimed type is never trusted), put back in front of the stream, and
 * the whole goes to `storage.put`, which enforces `maxBytes` while streaming and leaves
 * nothing behind when it fails. Memory use is one sniff buffer, whatever the file's size.
 *
 * Rejects with `ObjectTooLargeError` over `maxBytes`, with `UploadSourceError` when `file`
 * itself failed first, and with storage's error otherwise.
 */
export async function storeUpload(storage: Storage, file: Readable, maxBytes: number, now = new Date()): Promise<StoredUpload> {
  // The parser may have failed the part before we got here (a body cut off mid-file arrives
  // in one piece): then no 'error' would come any more.
  if (file.errored) throw new UploadSourceError(file.errored);
  if (file.destroyed && !file.readableEnded) throw new UploadSourceError(prematureClose());

  // A hop between the upload and storage tells whose fault a failure is: `file` failing
  // before storage gave up is the client's; storage giving up only stops `file`.
  const hop = new PassThrough();
  // Its errors reach us through peek() or storage.put(); this keeps a late one from being
  // re-emitted with no listener (pipe() removes its own on error).
  hop.on('error', () => {});
  let sourceError: unknown;
  const sourceFailed = (error: unknown) => {
    if (sourceError !== undefined || hop.destroyed) return;
    sourceError = error;
    hop.destroy(error instanceof Error ? error : new Error(String(error)));
  };
  file.on('error', sourceFailed);
  file.once('close', () => {
    if (!file.readableEnded) sourceFailed(file.errored ?? prematureClose());
  });
  hop.once('close', () => {
    if (!file.readableEnded) file.destroy();
  });
  file.pipe(hop);
  try {
    const { head, body } = await peek(hop, SNIFF_BYTES);
    const contentType = await detectContentType(head);
    const storageKey = newStorageKey(now);
    const { size } = await storage.put(storageKey, body, { contentType, maxBytes });
    return { storageKey, contentType, size };
  } catch (error) {
    hop.destroy();
    if (sourceError !== undefined && !(error instanceof ObjectTooLargeError)) throw new UploadSourceError(sourceError);
    throw error;
  }
}

/** `attachments/YYYY/MM/<uuid>`: generated here, never derived from anything the client sent. */
export function newStorageKey(now = new Date()): string {
  const month = String(now.getUTCMonth() + 1).padStart(2, '0');
  return `attachments/${now.getUTCFullYear()}/${month}/${randomUUID()}`;
}

/**
 * Reads until at least `bytes` are buffered (or the stream ends) and hands back those bytes
 * plus a stream that yields everything from the very first byte. The original stream is
 * reused (the head is `unshift`ed), so no copy of the rest is made and backpressure holds.
 */
export async function peek(stream: Readable, bytes: number): Promise<{ head: Buffer; body: Readable }> {
  if (stream.errored) throw stream.errored;
  const chunks: Buffer[] = [];
  let total = 0;
  return new Promise((resolve, reject) => {
    const settle = (result: () => void) => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      result();
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while (total < bytes && (chunk = stream.read() as Buffer | null) !== null) {
        chunks.push(chunk);
        total += chunk.length;
      }
      if (total < bytes) return;
      const head = Buffer.concat(chunks, total);
      // Synchronously, here: by the time a promise continuation ran, the stream could have
      // emitted 'end' (all of it was read), and a stream cannot be unshifted after that.
      stream.unshift(head);
      settle(() => resolve({ head, body: stream }));
    };
    const onEnd = () => {
      // The whole file was smaller than the sample: a fresh one-chunk stream replaces it.
      const head = Buffer.concat(chunks, total);
      const body = new PassThrough();
      body.end(head);
      settle(() => resolve({ head, body }));
    };
    const onError = (error: Error) => settle(() => reject(error));
    // Destroyed without an error (and without 'end'): the body was cut off.
    const onClose = () => settle(() => reject(stream.errored ?? prematureClose()));
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', onError);
    stream.once('close', onClose);
  });
}

const prematureClose = () => Object.assign(new Error('upload stream closed early'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

/**
 * The media type of a file from its first bytes. Binary formats come from file-type's magic
 * numbers; other text is `text/plain`, except markup a browser would render (HTML, SVG, XML),
 * which is named as such so that serving treats it as dangerous. Unknown: octet-stream.
 */
export async function detectContentType(head: Uint8Array): Promise<string> {
  const detected = await fileTypeFromBuffer(head).catch(() => undefined);
  if (detected) return detected.mime;
  const text = decodeText(head);
  if (text === null) return OCTET_STREAM;
  return markupType(text) ?? 'text/plain';
}

/** WHATWG's "binary data bytes": control characters that never appear in text. */
const BINARY_BYTES = /[\u0000-\u0008\u000b\u000e-\u001a\u001c-\u001f]/;

/** The sample as text when it is UTF-8 (a sequence cut at the sample's end is fine), else null. */
function decodeText(head: Uint8Array): string | null {
  if (head.length === 0) return null;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: true });
    return BINARY_BYTES.test(text) ? null : text;
  } catch {
    return null;
  }
}

/**
 * WHATWG MIME sniffing's HTML signatures (plus XML and SVG): text a browser that ignored our
 * Content-Type would render as a document.
 */
const HTML_SIGNATURE =
  /^<(!doctype html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p|!--)[\s>]/i;

function markupType(text: string): string | null {
  const start = text.replace(/^\ufeff/, '').trimStart();
  if (HTML_SIGNATURE.test(start)) return 'text/html';
  if (/^<svg[\s>]/i.test(start) || /^<\?xml[^>]*>\s*(<!--[\s\S]*?-->\s*)*(<!doctype svg[^>]*>\s*)?<svg[\s>]/i.test(start)) {
    return 'image/svg+xml';
  }
  if (/^<\?xml[\s?]/i.test(start)) return 'application/xml';
  return null;
}
