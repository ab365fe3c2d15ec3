/**
 * One contract for every Storage implementation (the guarantees in src/storage/storage.ts),
 * run against local disk in a temp dir and against a real S3-compatible server (s3rver).
 */
import {
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { createStorage } from '../src/storage/factory.js';
import {
  ObjectNotFoundError,
  ObjectTooLargeError,
  type Storage,
} from '../src/storage/storage.js';
import { startS3Server } from './helpers/s3-server.js';

interface Backend {
  storage: Storage;
  /** Everything the backend still holds: objects, temp files, pending uploads. */
  leftovers(): Promise<string[]>;
  /** Whether `presignedUrl` is expected to return a URL rather than null. */
  presigns: boolean;
  /** The object's plain URL without a signature, where the backend has one. */
  unsignedUrl?(key: string): string;
  /** Multipart uploads started so far, where the backend has such a thing. */
  multipartUploadsInitiated?(): number;
}

const MiB = 1024 * 1024;
/** Above lib-storage's 5 MiB part size, so S3 takes the multipart path. */
const MULTIPART_BYTES = 12 * MiB;

function storageContract(name: string, makeBackend: (t: Test) => Promise<Backend>): void {
  t.test(`${name}: put/get round trip keeps bytes and content type`, async (t) => {
    const { storage } = await makeBackend(t);
    const key = newKey();
    const data = randomBytes(100_000);
    const put = await storage.put(key, streamOf(data), { contentType: 'image/png', maxBytes: data.length });
    t.equal(put.size, data.length, 'put reports the size; a body of exactly maxBytes is accepted');
    const got = await storage.get(key);
    t.equal(got.size, data.length);
    t.equal(got.contentType, 'image/png');
    t.ok((await collect(got.body)).equals(data), 'same bytes back');
  });

  t.test(`${name}: empty object`, async (t) => {
    const { storage } = await makeBackend(t);
    const key = newKey();
    t.same(await storage.put(key, streamOf(Buffer.alloc(0)), { contentType: 'text/plain', maxBytes: 10 }), { size: 0 });
    const got = await storage.get(key);
    t.equal(got.size, 0);
    t.equal((await collect(got.body)).length, 0);
  });

  t.test(`${name}: multipart-sized round trip`, async (t) => {
    const backend = await makeBackend(t);
    const key = newKey();
    const data = randomBytes(MULTIPART_BYTES + 12_345);
    const before = backend.multipartUploadsInitiated?.();
    await backend.storage.put(key, streamOf(data), { contentType: 'video/mp4', maxBytes: 20 * MiB });
    if (before !== undefined) t.equal(backend.multipartUploadsInitiated?.(), before + 1, 'took the multipart path');
    const got = await backend.storage.get(key);
    t.equal(got.size, data.length);
    t.equal(sha256(await collect(got.body)), sha256(data), 'same bytes back');
    await backend.storage.delete(key);
    t.same(await backend.leftovers(), [], 'no stray parts once the object is deleted');
  });

  t.test(`${name}: ranges are inclusive and report the whole size`, async (t) => {
    const { storage } = await makeBackend(t);
    const key = newKey();
    const data = randomBytes(10_000);
    await storage.put(key, streamOf(data), { contentType: 'application/pdf', maxBytes: 1 * MiB });
    for (const [label, start, end] of [
      ['first bytes', 0, 9],
      ['middle', 4_000, 5_999],
      ['last byte', data.length - 1, data.length - 1],
      ['whole object as a range', 0, data.length - 1],
    ] as const) {
      const got = await storage.get(key, { start, end });
      t.equal(got.size, data.length, `${label}: size is the whole object's`);
      t.equal(got.contentType, 'application/pdf', `${label}: content type`);
      t.ok((await collect(got.body)).equals(data.subarray(start, end + 1)), `${label}: bytes ${start}-${end}`);
    }
  });

  t.test(`${name}: missing key`, async (t) => {
    const { storage } = await makeBackend(t);
    const key = newKey();
    t.ok(await rejection(storage.get(key)) instanceof ObjectNotFoundError, 'get rejects with ObjectNotFoundError');
    t.ok(await rejection(storage.get(key, { start: 0, end: 0 })) instanceof ObjectNotFoundError, 'ranged get too');
  });

  t.test(`${name}: delete is idempotent`, async (t) => {
    const backend = await makeBackend(t);
    const { storage } = backend;
    const key = newKey();
    await storage.put(key, streamOf(Buffer.from('bye')), { contentType: 'text/plain', maxBytes: 10 });
    await storage.delete(key);
    t.ok(await rejection(storage.get(key)) instanceof ObjectNotFoundError, 'gone after delete');
    await storage.delete(key);
    await storage.delete(newKey());
    t.same(await backend.leftovers(), [], 'nothing left, not even metadata');
  });

  t.test(`${name}: over the limit rejects and leaves nothing`, async (t) => {
    const backend = await makeBackend(t);
    const key = newKey();
    const err = await rejection(
      backend.storage.put(key, streamOf(randomBytes(5_000)), { contentType: 'text/plain', maxBytes: 4_999 }),
    );
    t.ok(err instanceof ObjectTooLargeError, 'ObjectTooLargeError');
    t.equal((err as ObjectTooLargeError).maxBytes, 4_999);
    t.ok(await rejection(backend.storage.get(key)) instanceof ObjectNotFoundError, 'no object');
    t.same(await backend.leftovers(), [], 'no file, temp file or upload left');
  });

  t.test(`${name}: over the limit after several parts aborts the upload`, async (t) => {
    const backend = await makeBackend(t);
    const key = newKey();
    const before = backend.multipartUploadsInitiated?.();
    const source = countingStream(MULTIPART_BYTES);
    const err = await rejection(
      backend.storage.put(key, source.stream, { contentType: 'video/mp4', maxBytes: 8 * MiB }),
    );
    t.ok(err instanceof ObjectTooLargeError, 'ObjectTooLargeError');
    if (before !== undefined) t.ok(backend.multipartUploadsInitiated!() > before, 'a multipart upload had begun');
    t.ok(source.produced() < MULTIPART_BYTES, 'stopped reading the body early');
    t.ok(source.stream.destroyed, 'body stream destroyed');
    t.same(await backend.leftovers(), [], 'no object and no pending multipart upload');
  });

  t.test(`${name}: a body that errors midway leaves nothing`, async (t) => {
    for (const [label, bytesBeforeError] of [
      ['small', 1_000],
      ['after a full part', 6 * MiB],
    ] as const) {
      const backend = await makeBackend(t);
      const key = newKey();
      const body = failingStream(bytesBeforeError, new Error('client went away'));
      const err = await rejection(backend.storage.put(key, body, { contentType: 'text/plain', maxBytes: 20 * MiB }));
      t.match(err, { message: 'client went away' }, `${label}: the body's error comes through`);
      t.ok(await rejection(backend.storage.get(key)) instanceof ObjectNotFoundError, `${label}: no object`);
      t.same(await backend.leftovers(), [], `${label}: nothing left behind`);
    }
  });

  t.test(`${name}: presignedUrl`, async (t) => {
    const backend = await makeBackend(t);
    const key = newKey();
    const data = Buffer.from('<script>alert(1)</script>');
    await backend.storage.put(key, streamOf(data), { contentType: 'text/html', maxBytes: 1_000 });
    const options = {
      expiresInSeconds: 60,
      contentDisposition: 'attachment; filename="evil.html"',
      contentType: 'application/octet-stream',
    };
    const url = await backend.storage.presignedUrl(key, options);
    if (!backend.presigns) {
      t.equal(url, null, 'no presigned URLs from this backend');
      return;
    }
    if (url === null) throw new Error('expected a presigned URL');
    const res = await fetch(url);
    t.equal(res.status, 200, 'presigned URL downloads');
    t.equal(res.headers.get('content-disposition'), options.contentDisposition);
    t.equal(res.headers.get('content-type'), options.contentType);
    t.ok(Buffer.from(await res.arrayBuffer()).equals(data), 'same bytes');

    const tampered = new URL(url);
    tampered.searchParams.set('response-content-disposition', 'inline');
    t.equal((await drain(fetch(tampered))).status, 403, 'the signed response headers cannot be changed');

    if (backend.unsignedUrl) {
      t.equal((await drain(fetch(backend.unsignedUrl(key)))).status, 403, 'unsigned URL refused: bucket is private');
    }
  });

  t.test(`${name}: ping`, async (t) => {
    const { storage } = await makeBackend(t);
    t.equal(await storage.ping(), true);
  });
}

storageContract('local', async (t) => {
  const dir = await tempDir(t);
  const storage = createStorage({ kind: 'local', local: { dir } });
  t.teardown(() => storage.close());
  return {
    storage,
    presigns: false,
    async leftovers() {
      const entries = await readdir(dir, { recursive: true, withFileTypes: true });
      return entries.filter((e) => !e.isDirectory()).map((e) => relative(dir, join(e.parentPath, e.name)));
    },
  };
});

storageContract('s3', async (t) => {
  const server = await startS3Server(t);
  const s3 = server.storageOptions;
  const storage = createStorage({ kind: 's3', s3 });
  const probe = new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  });
  t.teardown(async () => {
    probe.destroy();
    await storage.close();
  });
  return {
    storage,
    presigns: true,
    unsignedUrl: (key) => `${server.endpoint}/${server.bucket}/${key}`,
    multipartUploadsInitiated: () => server.multipartUploadsInitiated(),
    async leftovers() {
      const objects = await probe.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
      const uploads = await probe.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket }));
      return [
        ...(objects.Contents ?? []).map((o) => o.Key ?? '?'),
        ...(uploads.Uploads ?? []).map((u) => `pending upload ${u.UploadId} for ${u.Key}`),
      ];
    },
  };
});

t.test('local: keys that would escape the directory are refused', async (t) => {
  const parent = await tempDir(t);
  const dir = join(parent, 'store');
  const storage = createStorage({ kind: 'local', local: { dir } });
  for (const key of [
    '../escape',
    'attachments/../../escape',
    '/etc/passwd',
    `${parent}/escape`,
    'attachments/\0/x',
    'attachments\\..\\..\\escape',
    '..',
    '',
    'attachments//x',
    'attachments/.hidden',
    'attachments/x.meta.json',
  ]) {
    const label = JSON.stringify(key);
    const errors = [
      await rejection(storage.put(key, streamOf(Buffer.from('x')), { contentType: 'text/plain', maxBytes: 10 })),
      await rejection(storage.get(key)),
      await rejection(storage.delete(key)),
    ];
    t.ok(
      errors.every((e) => e instanceof Error && !(e instanceof ObjectNotFoundError)),
      `${label} refused by put, get and delete`,
    );
  }
  t.same(await readdir(parent), [], 'nothing written anywhere, not even the store dir');
});

t.test('local: ping is false when the directory cannot be used', async (t) => {
  const parent = await tempDir(t);
  const file = join(parent, 'not-a-dir');
  await writeFile(file, 'x');
  const storage = createStorage({ kind: 'local', local: { dir: join(file, 'store') } });
  t.equal(await storage.ping(), false);
});

t.test('s3: ping is false for a bucket that does not exist', async (t) => {
  const server = await startS3Server(t);
  const storage = createStorage({
    kind: 's3',
    s3: {
      bucket: `missing-${randomUUID()}`,
      endpoint: server.endpoint,
      region: server.region,
      accessKeyId: server.accessKeyId,
      secretAccessKey: server.secretAccessKey,
      forcePathStyle: true,
    },
  });
  t.teardown(() => storage.close());
  t.equal(await storage.ping(), false);
});

t.test('factory refuses an unknown kind and missing options', async (t) => {
  // Simulates a bad value arriving from config at runtime, past the type checker.
  t.throws(() => createStorage({ kind: 'ftp' as never }), /unknown storage kind "ftp"/);
  t.throws(() => createStorage({ kind: 's3' }), /needs s3 options/);
  t.throws(() => createStorage({ kind: 'local' }), /needs local options/);
});

function newKey(): string {
  return `attachments/2026/11/${randomUUID()}`;
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'storage-contract-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Streams a buffer in 64 KiB chunks, like a request body does. */
function streamOf(data: Buffer): Readable {
  return Readable.from(chunks(data.length, (offset, size) => data.subarray(offset, offset + size)), {
    objectMode: false,
  });
}

/** Random bytes produced lazily, with a count of how much the consumer pulled. */
function countingStream(total: number): { stream: Readable; produced(): number } {
  let produced = 0;
  const stream = Readable.from(
    chunks(total, (_offset, size) => {
      produced += size;
      return randomBytes(size);
    }),
    { objectMode: false },
  );
  return { stream, produced: () => produced };
}

function failingStream(bytesBeforeError: number, error: Error): Readable {
  async function* body() {
    yield* chunks(bytesBeforeError, (_offset, size) => randomBytes(size));
    throw error;
  }
  return Readable.from(body(), { objectMode: false });
}

function* chunks(total: number, make: (offset: number, size: number) => Buffer): Generator<Buffer> {
  const chunkSize = 64 * 1024;
  for (let offset = 0; offset < total; offset += chunkSize) {
    yield make(offset, Math.min(chunkSize, total - offset));
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer); // byte streams yield Buffers
  return Buffer.concat(parts);
}

async function drain(response: Promise<Response>): Promise<Response> {
  const res = await response;
  await res.arrayBuffer(); // frees the connection so teardown does not wait on it
  return res;
}

/** The rejection reason, or `RESOLVED` so a promise that should have failed never passes as an error. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => RESOLVED,
    (err: unknown) => err,
  );
}

const RESOLVED = Symbol('resolved');

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
