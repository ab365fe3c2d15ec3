/**
 * A real S3-compatible HTTP server for tests: s3rver on 127.0.0.1 with a temp directory and
 * a fresh random bucket.
 *
 * s3rver 3.7 has three gaps that matter for the storage contract, filled by a small front
 * handler here (each mirrors real S3's documented behaviour, nothing more):
 * - It has no access control at all: anonymous requests are served and SigV4 signatures are
 *   never checked. The front handler refuses unsigned requests with 403 AccessDenied (as a
 *   private bucket does) and verifies presigned (query SigV4) signatures and expiry. Requests
 *   the SDK signs in the Authorization header are passed through unverified.
 * - ListMultipartUploads (GET ?uploads) answers NotImplemented.
 * - AbortMultipartUpload (DELETE ?uploadId) answers MethodNotAllowed and keeps the parts.
 *   Both are served here from s3rver's own on-disk upload directories.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { S3StorageOptions } from '../../src/storage/storage-s3.js';

export interface S3TestServer {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The storage options that point `createStorage({ kind: 's3' })` at this server. */
  storageOptions: S3StorageOptions;
  /** CreateMultipartUpload requests seen, so tests can prove the multipart path ran. */
  multipartUploadsInitiated(): number;
  close(): Promise<void>;
}

const ACCESS_KEY_ID = 'S3RVER';
const SECRET_ACCESS_KEY = 'S3RVER';
const REGION = 'us-east-1';

export async function startS3Server(t: Test): Promise<S3TestServer> {
  const directory = await mkdtemp(join(tmpdir(), 's3rver-'));
  const s3rver = new S3rver({ directory, silent: true, vhostBuckets: false });
  const handle = s3rver.callback();
  let initiated = 0;

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://placeholder');
    const refusal = accessRefusal(req, url);
    if (refusal !== undefined) return sendError(res, 403, refusal);

    const [bucket = '', ...keyParts] = url.pathname.slice(1).split('/');
    const key = keyParts.map(decodeURIComponent).join('/');
    const uploadId = url.searchParams.get('uploadId');
    if (req.method === 'POST' && key !== '' && url.searchParams.has('uploads')) {
      initiated += 1;
    } else if (req.method === 'GET' && bucket !== '' && key === '' && url.searchParams.has('uploads')) {
      return reply(res, listUploads(directory, bucket).then((xml) => [200, xml] as const));
    } else if (req.method === 'DELETE' && key !== '' && uploadId !== null) {
      const aborted = abortUpload(directory, bucket, uploadId).then((found) =>
        found ? ([204, ''] as const) : ([404, errorXml('NoSuchUpload')] as const),
      );
      return reply(res, aborted);
    }
    handle(req, res);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo; // listening on TCP, never a pipe
  const endpoint = `http://127.0.0.1:${port}`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(directory, { recursive: true, force: true });
    })();
    return closing;
  };
  t.teardown(close);

  const bucket = `test-${randomUUID()}`;
  const admin = new S3Client({
    endpoint,
    region: REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
  });
  try {
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    admin.destroy();
  }

  return {
    endpoint,
    bucket,
    accessKeyId: ACCESS_KEY_ID,
    secretAccessKey: SECRET_ACCESS_KEY,
    region: REGION,
    storageOptions: {
      bucket,
      endpoint,
      region: REGION,
      accessKeyId: ACCESS_KEY_ID,
      secretAccessKey: SECRET_ACCESS_KEY,
      forcePathStyle: true,
    },
    multipartUploadsInitiated: () => initiated,
    close,
  };
}

/** s3rver keeps each pending multipart upload in `<dir>/<bucket>/._S3rver_uploads/<id>/`. */
function uploadsDir(directory: string, bucket: string): string {
  return join(directory, bucket, '._S3rver_uploads');
}

async function listUploads(directory: string, bucket: string): Promise<string> {
  const ids = await readdir(uploadsDir(directory, bucket)).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  });
  const uploads = await Promise.all(
    ids.map(async (id) => {
      const dir = join(uploadsDir(directory, bucket), id);
      // A part written after its upload was removed recreates the dir without a key file;
      // real S3 would still be holding those bytes, so it is listed rather than hidden.
      const key = await readFile(join(dir, 'key'), 'utf8').catch(() => '');
      const { mtime } = await stat(dir);
      return `<Upload><Key>${xmlEscape(key)}</Key><UploadId>${xmlEscape(id)}</UploadId><Initiated>${mtime.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`;
    }),
  );
  return (
    '<?xml version="1.0" encoding="UTF-8"?>' +
    '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    `<Bucket>${xmlEscape(bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>` +
    `<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads.join('')}` +
    '</ListMultipartUploadsResult>'
  );
}

async function abortUpload(directory: string, bucket: string, uploadId: string): Promise<boolean> {
  // s3rver's ids are hex; anything else must not become a path.
  if (!/^[0-9a-f]+$/.test(uploadId)) return false;
  const dir = join(uploadsDir(directory, bucket), uploadId);
  const exists = await stat(dir).then(
    () => true,
    () => false,
  );
  if (exists) await rm(dir, { recursive: true, force: true });
  return exists;
}

/**
 * AWS SigV4 query-string verification (what real S3 does for presigned URLs), computed from
 * the raw request so that a URL which only works because s3rver skips checks fails here.
 */
function presignedSignatureValid(req: IncomingMessage, url: URL): boolean {
  const q = url.searchParams;
  const credential = q.get('X-Amz-Credential');
  const amzDate = q.get('X-Amz-Date');
  const expires = Number(q.get('X-Amz-Expires'));
  const signedHeaders = q.get('X-Amz-SignedHeaders');
  const signature = q.get('X-Amz-Signature');
  if (q.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return false;
  if (!credential || !amzDate || !signedHeaders || !signature || !Number.isInteger(expires)) return false;

  const iso = amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z');
  const signedAt = Date.parse(iso);
  if (Number.isNaN(signedAt) || Date.now() > signedAt + expires * 1000) return false;

  const [accessKeyId, ...scopeParts] = credential.split('/');
  const [date, region, service] = scopeParts;
  if (accessKeyId !== ACCESS_KEY_ID || !date || !region || !service) return false;

  const rawUrl = req.url ?? '/';
  const queryStart = rawUrl.indexOf('?');
  const rawPath = queryStart === -1 ? rawUrl : rawUrl.slice(0, queryStart);
  const canonicalQuery = (queryStart === -1 ? '' : rawUrl.slice(queryStart + 1))
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = decodeURIComponent(eq === -1 ? pair : pair.slice(0, eq));
      const value = eq === -1 ? '' : decodeURIComponent(pair.slice(eq + 1));
      return [rfc3986(name), rfc3986(value)] as const;
    })
    .filter(([name]) => name !== 'X-Amz-Signature')
    .sort(([a, av], [b, bv]) => (a === b ? compare(av, bv) : compare(a, b)))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
  const canonicalHeaders = signedHeaders
    .split(';')
    .map((name) => `${name}:${String(req.headers[name] ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const canonicalRequest = [
    req.method ?? 'GET',
    rawPath,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders,
    'UNSIGNED-PAYLOAD',
  ].join('\n');
  const stringToSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    scopeParts.join('/'),
    createHash('sha256').update(canonicalRequest).digest('hex'),
  ].join('\n');
  let key: Buffer = Buffer.from(`AWS4${SECRET_ACCESS_KEY}`);
  for (const part of [date, region, service, 'aws4_request']) key = hmac(key, part);
  const expected = Buffer.from(hmac(key, stringToSign).toString('hex'));
  const provided = Buffer.from(signature);
  return expected.length === provided.length && timingSafeEqual(expected, provided);
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function rfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function xmlEscape(value: string): string {
  return value.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Real S3 refuses what a private bucket's policy does not allow; s3rver allows everything. */
function accessRefusal(req: IncomingMessage, url: URL): string | undefined {
  if (req.headers.authorization !== undefined) return undefined;
  if (url.searchParams.has('X-Amz-Algorithm')) {
    return presignedSignatureValid(req, url) ? undefined : 'SignatureDoesNotMatch';
  }
  return 'AccessDenied';
}

function reply(res: ServerResponse, result: Promise<readonly [number, string]>): void {
  result
    // A 500 makes the SDK call in the test fail, which is how a broken shim should show up.
    .catch((err: unknown) => [500, errorXml('InternalError', String(err))] as const)
    .then(([status, xml]) => {
      res.writeHead(status, xml === '' ? {} : { 'content-type': 'application/xml' });
      res.end(xml);
    });
}

function sendError(res: ServerResponse, status: number, code: string): void {
  reply(res, Promise.resolve([status, errorXml(code)]));
}

function errorXml(code: string, message = code): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`;
}
