/**
 * Attachments end to end (API.md "Attachments"), run against each storage backend by
 * test/attachments-local.test.ts and test/attachments-s3.test.ts: a real listener, uploads and
 * downloads with fetch(), and the storage itself inspected to prove what is (not) kept.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { createMemoryBus } from '../../src/bus/bus-memory.js';
import { conversationChannel } from '../../src/redis/names.js';
import type { DatabaseHandle } from '../../src/db/client.js';
import { decodeEvent } from '../../src/messages/event-codec.js';
import { readEvents } from '../../src/messages/event-log.js';
import type { AttachmentView } from '../../src/contract/messages.js';
import { createStorage } from '../../src/storage/factory.js';
import type { Storage } from '../../src/storage/storage.js';
import { call, createConversation, register, type Session } from '../helpers/api.js';
import { buildTestApp, tempDir, testDatabase, type DatabaseKind } from '../helpers/app.js';
import { startS3Server } from '../helpers/s3-server.js';

export type StorageKindUnderTest = 'local' | 's3';

const MiB = 1024 * 1024;
const KEY_PATTERN = /^attachments\/\d{4}\/\d{2}\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A complete 1x1 PNG. */
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
    '1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5d6a1a30000000049454e44ae426082',
  'hex',
);
const HTML = Buffer.from('<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>');

interface Backend {
  storage: Storage;
  /** Every key the backend holds, and any pending multipart upload. */
  objects(): Promise<string[]>;
  /** Resolves once every delete the app started has finished (removeStoredFiles is fire-and-forget). */
  deletesSettled(): Promise<void>;
}

interface Context {
  app: FastifyInstance;
  database: DatabaseHandle;
  backend: Backend;
  bus: ReturnType<typeof createMemoryBus>;
  /** http://127.0.0.1:<port> of the real listener. */
  base: string;
  alice: Session;
  bob: Session;
  /** Registered, but in no conversation with alice and bob. */
  outsider: Session;
  conversationId: number;
  messageId: number;
}

export function attachmentSuite(kind: StorageKindUnderTest, databaseKind: DatabaseKind): void {
  async function makeBackend(t: Test): Promise<Backend> {
    if (kind === 'local') {
      const dir = tempDir(t, 'attachments-local-');
      return tracked(createStorage({ kind: 'local', local: { dir } }), async () => {
        const entries = await readdir(dir, { recursive: true, withFileTypes: true });
        const files = entries.filter((entry) => !entry.isDirectory()).map((entry) => relative(dir, join(entry.parentPath, entry.name)));
        // An object's metadata twin is part of it; an orphaned one, or a temp file, is listed.
        const present = new Set(files);
        return files.filter((name) => !(name.endsWith('.meta.json') && present.has(name.slice(0, -'.meta.json'.length)))).sort();
      });
    }
    const server = await startS3Server(t);
    const s3 = server.storageOptions;
    const probe = new S3Client({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server });
    t.teardown(() => probe.destroy());
    return tracked(createStorage({ kind: 's3', s3 }), async () => {
      const objects = await probe.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
      const uploads = await probe.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket }));
      return [
        ...(objects.Contents ?? []).map((object) => object.Key ?? '?').sort(),
        ...(uploads.Uploads ?? []).map((upload) => `pending upload for ${upload.Key}`),
      ];
    });
  }

  // One database for the file (each test makes its own users and conversation); storage and
  // app are per test, so what a test finds in storage is its own.
  let sharedDatabase: Promise<DatabaseHandle> | undefined;
  const suiteDatabase = () => (sharedDatabase ??= testDatabase(t, databaseKind).then(({ database }) => database));

  async function setup(t: Test, env: Record<string, string> = {}): Promise<Context> {
    const database = await suiteDatabase();
    const backend = await makeBackend(t);
    t.teardown(() => backend.storage.close());
    const bus = createMemoryBus();
    const app = await buildTestApp(t, { database, bus, storage: backend.storage, env });
    await app.listen({ port: 0, host: '127.0.0.1' });
    // Client and server share this process, so fetch() can hand a test the whole body before
    // the server has seen its response finish. Closing then would find that keep-alive socket
    // busy and leave it open until keepAliveTimeout; teardown (LIFO: before app.close) waits
    // for every exchange to end. A request body the server left unread never ends, so a test
    // that leaves one behind times out here: that is a real leak, not a test artefact.
    const busy = new Set<object>();
    let quiet: (() => void) | undefined;
    app.server.on('request', (req, res) => {
      const exchange = {};
      busy.add(exchange);
      let open = 2;
      const done = () => {
        if (--open > 0) return;
        busy.delete(exchange);
        if (busy.size === 0) quiet?.();
      };
      res.once('close', done);
      req.once('close', done);
    });
    t.teardown(() => (busy.size === 0 ? undefined : new Promise<void>((resolve) => (quiet = resolve))));
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const [alice, bob, outsider] = [await register(app), await register(app), await register(app)];
    const conversationId = await createConversation(app, alice, [bob]);
    const sent = await call(app, 'POST', `/api/conversations/${conversationId}/messages/`, {
      token: alice.token,
      body: { content: 'see attached' },
    });
    return { app, database, backend, bus, base, alice, bob, outsider, conversationId, messageId: sent.json.id };
  }

  const name = (title: string) => `${kind}: ${title}`;

  t.test(name('upload, list, download by signed link; the message shows it'), async (t) => {
    const ctx = await setup(t);
    const data = Buffer.concat([PNG, randomBytes(200_000)]);
    const res = await upload(ctx, ctx.alice, new Blob([data], { type: 'image/png' }), 'photo.png');
    t.equal(res.status, 201);
    const attachment = (await res.json()) as AttachmentView;
    t.match(attachment, { id: Number, filename: 'photo.png', content_type: 'image/png', size: data.length });
    t.match(attachment.uploaded_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    t.match(attachment.file, new RegExp(`^http://chat\\.test/media/attachments/${attachment.id}/photo\\.png\\?expires=\\d+&sig=[\\w-]+$`));

    const [key] = await ctx.backend.objects();
    t.match(key, KEY_PATTERN, 'key generated by the service');
    t.equal((await ctx.backend.objects()).length, 1, 'one object stored');

    const listUrl = `/api/conversations/${ctx.conversationId}/messages/${ctx.messageId}/attachments/`;
    for (const session of [ctx.alice, ctx.bob]) {
      const list = await call(ctx.app, 'GET', listUrl, { token: session.token });
      t.equal(list.status, 200);
      t.same(list.json.map(withoutFile), [withoutFile(attachment)], 'participants list it');
    }
    const messages = await call(ctx.app, 'GET', `/api/conversations/${ctx.conversationId}/messages/`, { token: ctx.bob.token });
    t.same(messages.json[0].attachments.map(withoutFile), [withoutFile(attachment)], 'the message list shows the attachment');

    // The signed link works with no header at all, as in a browser <img>.
    const download = await fetch(local(ctx, attachment.file));
    t.equal(download.status, 200);
    t.ok(Buffer.from(await download.arrayBuffer()).equals(data), 'same bytes');
    t.equal(download.headers.get('content-type'), 'image/png');
    t.equal(download.headers.get('content-length'), String(data.length));
    t.equal(download.headers.get('content-disposition'), `inline; filename="photo.png"; filename*=UTF-8''photo.png`);
    t.equal(download.headers.get('x-content-type-options'), 'nosniff');
    t.equal(download.headers.get('content-security-policy'), "default-src 'none'; sandbox");
    t.equal(download.headers.get('accept-ranges'), 'bytes');
    const maxAge = Number(/^private, max-age=(\d+)$/.exec(download.headers.get('cache-control') ?? '')?.[1]);
    const ttl = ctx.app.config.ATTACHMENT_URL_TTL_SECONDS;
    t.ok(maxAge > ttl - 5 && maxAge <= ttl + 300, `cached privately until the link expires (max-age=${maxAge})`);

    const head = await fetch(local(ctx, attachment.file), { method: 'HEAD' });
    t.equal(head.status, 200, 'HEAD');
    t.equal(head.headers.get('content-length'), String(data.length), 'HEAD reports the size');
    t.equal((await head.arrayBuffer()).byteLength, 0, 'HEAD has no body');

    // A participant's bearer token is enough, without the signature.
    const path = new URL(attachment.file).pathname;
    const byToken = await fetch(`${ctx.base}${path}`, { headers: { authorization: `Bearer ${ctx.bob.token}` } });
    t.equal(byToken.status, 200, 'participant token without a signature');
    t.ok(Buffer.from(await byToken.arrayBuffer()).equals(data));
    t.equal(byToken.headers.get('cache-control'), 'private, no-cache');
  });

  t.test(name('attachment.added is logged with the next seq and published after commit'), async (t) => {
    const ctx = await setup(t);
    const before = await call(ctx.app, 'GET', `/api/conversations/${ctx.conversationId}/`, { token: ctx.alice.token });
    const lastSeq: number = before.json.last_seq;
    const published = new Promise<string>((resolve) => {
      void ctx.bus.subscribe(conversationChannel(ctx.conversationId), (payload) => {
        if (payload.includes('"attachment.added"')) resolve(payload);
      });
    });
    // subscribe() on the memory bus is active as soon as it is called.
    const res = await upload(ctx, ctx.alice, new Blob(['hello, world\n']), 'note.txt');
    t.equal(res.status, 201);
    const attachment = (await res.json()) as AttachmentView;

    const decoded = decodeEvent(await published);
    t.ok(decoded, 'payload in the bus format');
    t.equal(decoded?.seq, lastSeq + 1, 'the next seq');
    const event = JSON.parse(decoded?.json ?? '{}');
    t.match(event, { type: 'attachment.added', seq: lastSeq + 1, conversation_id: ctx.conversationId, message_id: ctx.messageId });
    t.same(withoutFile(event.attachment), withoutFile(attachment), 'carries the attachment object');

    const events = await readEvents(ctx.database, ctx.app.links, ctx.conversationId, lastSeq, 100);
    t.equal(events.length, 1, 'one event after the previous seq');
    t.match(events[0], { type: 'attachment.added', seq: lastSeq + 1, message_id: ctx.messageId });
    if (events[0]?.type === 'attachment.added') t.same(withoutFile(events[0].attachment), withoutFile(attachment));
  });

  t.test(name('who may upload, list and download'), async (t) => {
    const ctx = await setup(t);
    const listUrl = `/api/conversations/${ctx.conversationId}/messages/${ctx.messageId}/attachments/`;
    const res = await upload(ctx, ctx.alice, new Blob([PNG]), 'a.png');
    const attachment = (await res.json()) as AttachmentView;
    const path = new URL(attachment.file).pathname;
    const signed = new URL(local(ctx, attachment.file));
    const status = async (url: string | URL, headers: Record<string, string> = {}) => (await drain(fetch(url, { headers }))).status;

    // Uploads.
    t.equal((await upload(ctx, ctx.bob, new Blob([PNG]), 'b.png')).status, 403, 'a participant who did not send it: 403');
    t.equal((await upload(ctx, ctx.outsider, new Blob([PNG]), 'c.png')).status, 404, 'non-participant: 404');
    t.equal((await upload(ctx, null, new Blob([PNG]), 'c.png')).status, 401, 'no token: 401');
    t.equal((await upload(ctx, ctx.alice, new Blob([PNG]), 'd.png', { messageId: ctx.messageId + 1000 })).status, 404, 'unknown message: 404');
    const other = await createConversation(ctx.app, ctx.outsider, [ctx.bob]);
    t.equal(
      (await upload(ctx, ctx.alice, new Blob([PNG]), 'e.png', { conversationId: other })).status,
      404,
      "another conversation's id: 404",
    );

    // Listing.
    t.equal((await call(ctx.app, 'GET', listUrl, { token: ctx.outsider.token })).status, 404, 'outsider cannot list');
    t.equal((await call(ctx.app, 'GET', listUrl)).status, 401, 'anonymous cannot list');
    t.equal(
      (await call(ctx.app, 'GET', `/api/conversations/${ctx.conversationId}/messages/${ctx.messageId + 1000}/attachments/`, { token: ctx.alice.token })).status,
      404,
      'unknown message: 404',
    );

    // Downloads.
    t.equal(await status(signed), 200, 'the signed link works');
    const tamperedSig = new URL(signed);
    const sig = tamperedSig.searchParams.get('sig') ?? '';
    tamperedSig.searchParams.set('sig', (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1));
    t.equal(await status(tamperedSig), 403, 'tampered signature: 403');
    const extended = new URL(signed);
    extended.searchParams.set('expires', String(Number(extended.searchParams.get('expires')) + 3600));
    t.equal(await status(extended), 403, 'extended expiry: 403');
    const otherId = new URL(signed);
    otherId.pathname = otherId.pathname.replace(`/${attachment.id}/`, `/${attachment.id + 1}/`);
    t.equal(await status(otherId), 403, "another attachment's signature: 403");
    const ttl = ctx.app.config.ATTACHMENT_URL_TTL_SECONDS;
    const expired = ctx.app.links.url({ id: attachment.id, filename: 'a.png' }, Date.now() - (ttl + 600) * 1000);
    t.equal(await status(local(ctx, expired)), 403, 'expired link: 403');
    t.equal(await status(`${ctx.base}${path}`), 403, 'no signature, no token: 403');
    t.equal(await status(`${ctx.base}${path}?expires=abc&sig=x`), 403, 'garbage signature: 403');
    t.equal(await status(`${ctx.base}${path}`, { authorization: `Bearer ${ctx.outsider.token}` }), 404, 'outsider token: 404');
    t.equal(await status(`${ctx.base}${path}`, { authorization: 'Bearer not-a-token' }), 401, 'invalid token: 401');
    t.equal(
      await status(`${ctx.base}/media/attachments/${attachment.id + 1000}/x.png`, { authorization: `Bearer ${ctx.alice.token}` }),
      404,
      'unknown attachment with a token: 404',
    );
    const forged = ctx.app.links.url({ id: attachment.id + 1000, filename: 'x.png' });
    t.equal(await status(local(ctx, forged)), 404, 'validly signed but unknown: 404');
    const error = await fetch(tamperedSig);
    t.equal(error.headers.get('x-content-type-options'), 'nosniff', 'errors carry nosniff too');
    t.match(await error.json(), { statusCode: 403, error: 'Forbidden' }, "API.md's error shape");

    t.equal((await ctx.backend.objects()).length, 1, 'refused uploads stored nothing');
    t.equal(await attachmentRows(ctx), 1, 'and wrote no row');
  });

  t.test(name('bad bodies: not multipart, no file field, wrong field, deleted message'), async (t) => {
    const ctx = await setup(t);
    const url = `${ctx.base}/api/conversations/${ctx.conversationId}/messages/${ctx.messageId}/attachments/`;
    const auth = { authorization: `Bearer ${ctx.alice.token}` };

    const json = await fetch(url, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"file":"x"}' });
    t.equal(json.status, 415, 'JSON body: 415');
    t.match(await json.json(), { statusCode: 415, message: /multipart/ });
    const octets = await drain(fetch(url, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: PNG }));
    t.equal(octets.status, 415, 'raw bytes: 415');

    const fieldsOnly = new FormData();
    fieldsOnly.append('caption', 'no file here');
    const noFile = await fetch(url, { method: 'POST', headers: auth, body: fieldsOnly });
    t.equal(noFile.status, 400, 'no file: 400');
    t.match(await noFile.json(), { message: /file/ });

    const wrongField = new FormData();
    wrongField.append('upload', new Blob([PNG]), 'a.png');
    const wrong = await fetch(url, { method: 'POST', headers: auth, body: wrongField });
    t.equal(wrong.status, 400, 'file in another field: 400');
    t.match(await wrong.json(), { message: /`file`/ });

    const broken = await drain(
      fetch(url, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'multipart/form-data; boundary=xyz' },
        body: '--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhalf a file and no end',
      }),
    );
    t.equal(broken.status, 400, 'multipart cut off mid-file: 400');
    const noBoundary = await drain(
      fetch(url, { method: 'POST', headers: { ...auth, 'content-type': 'multipart/form-data' }, body: 'whatever' }),
    );
    t.equal(noBoundary.status, 400, 'multipart without a boundary: 400');

    const empty = await upload(ctx, ctx.alice, new Blob([]), 'empty.txt');
    t.equal(empty.status, 201, 'an empty file is a file');
    t.match(await empty.json(), { size: 0, content_type: 'application/octet-stream' });

    t.equal((await call(ctx.app, 'DELETE', `/api/conversations/${ctx.conversationId}/messages/${ctx.messageId}/`, { token: ctx.alice.token })).status, 204);
    await ctx.backend.deletesSettled();
    t.equal((await upload(ctx, ctx.alice, new Blob([PNG]), 'late.png')).status, 409, 'deleted message: 409');
    t.same(await ctx.backend.objects(), [], 'nothing kept from any refused upload');
    t.equal(await attachmentRows(ctx), 0);
  });

  t.test(name('over MAX_ATTACHMENT_BYTES: 413, no row, no object'), async (t) => {
    const ctx = await setup(t, { MAX_ATTACHMENT_BYTES: String(1 * MiB) });
    const declared = await upload(ctx, ctx.alice, new Blob([randomBytes(3 * MiB)]), 'big.bin');
    t.equal(declared.status, 413, 'with Content-Length: 413');
    t.match(await declared.json(), { statusCode: 413, error: 'Payload Too Large' });

    // Chunked, so the size is only known while streaming: storage.put's limit is what stops it.
    const streamed = await uploadStream(ctx, ctx.alice, 3 * MiB);
    t.equal(streamed.status, 413, 'streamed without Content-Length: 413');
    t.match(await streamed.json(), { statusCode: 413 });
    const justOver = await uploadStream(ctx, ctx.alice, 1 * MiB + 1);
    t.equal(justOver.status, 413, 'one byte over: 413');
    await justOver.body?.cancel();

    t.same(await ctx.backend.objects(), [], 'no object, no temp file, no pending upload');
    t.equal(await attachmentRows(ctx), 0, 'no row');

    const exact = await uploadStream(ctx, ctx.alice, 1 * MiB);
    t.equal(exact.status, 201, 'exactly the limit is accepted');
    t.match(await exact.json(), { size: 1 * MiB });
    t.equal((await ctx.backend.objects()).length, 1);
    t.equal(await attachmentRows(ctx), 1);
  });

  t.test(name('filenames are metadata only'), async (t) => {
    const ctx = await setup(t);
    const cases: [string, string][] = [
      ['../../etc/passwd', 'passwd'],
      ['..\\..\\x', 'x'],
      ['/etc/shadow', 'shadow'],
      ['C:\\Windows\\system.ini', 'system.ini'],
      ['..', 'file'],
      ['bad\u202egnp.exe', 'badgnp.exe'],
      ['سند «نهایی».pdf', 'سند «نهایی».pdf'],
    ];
    for (const [sent, kept] of cases) {
      const res = await upload(ctx, ctx.alice, new Blob(['just text\n']), sent);
      t.equal(res.status, 201, `${JSON.stringify(sent)} accepted`);
      const attachment = (await res.json()) as AttachmentView;
      t.equal(attachment.filename, kept, `${JSON.stringify(sent)} kept as ${JSON.stringify(kept)}`);
      const download = await fetch(local(ctx, attachment.file));
      t.equal(download.status, 200, 'its link works');
      const disposition = download.headers.get('content-disposition') ?? '';
      t.match(disposition, /^inline; filename="[\x20-\x21\x23-\x24\x26-\x5b\x5d-\x7e]+"; filename\*=UTF-8''[\w.~!#$&+^`|%-]+$/, 'ASCII fallback and RFC 5987 name');
      t.equal(decodeURIComponent(disposition.split("filename*=UTF-8''")[1] ?? ''), kept, 'filename* round-trips');
      await download.arrayBuffer();
    }
    const keys = await ctx.backend.objects();
    t.equal(keys.length, cases.length);
    for (const key of keys) t.match(key, KEY_PATTERN, `${key}: generated, not from the filename`);
  });

  t.test(name('content type comes from the bytes; active content is a download'), async (t) => {
    const ctx = await setup(t);
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
    const cases = [
      { label: 'HTML claiming to be a PNG', bytes: HTML, claimed: 'image/png', name: 'cat.png', stored: 'text/html', served: 'text/html', inline: false },
      { label: 'a PNG claiming to be HTML', bytes: PNG, claimed: 'text/html', name: 'page.html', stored: 'image/png', served: 'image/png', inline: true },
      { label: 'SVG with script', bytes: svg, claimed: 'image/png', name: 'logo.svg', stored: 'image/svg+xml', served: 'image/svg+xml', inline: false },
      { label: 'unknown bytes', bytes: Buffer.from([0, 1, 2, 3, 0xfe, 0xff]), claimed: 'image/jpeg', name: 'x.jpg', stored: 'application/octet-stream', served: 'application/octet-stream', inline: false },
      { label: 'plain text', bytes: Buffer.from('سلام\nhello\n'), claimed: 'text/html', name: 'hi.txt', stored: 'text/plain', served: 'text/plain; charset=utf-8', inline: true },
    ];
    for (const c of cases) {
      const res = await upload(ctx, ctx.alice, new Blob([c.bytes], { type: c.claimed }), c.name);
      t.equal(res.status, 201, c.label);
      const attachment = (await res.json()) as AttachmentView;
      t.equal(attachment.content_type, c.stored, `${c.label}: stored as ${c.stored}`);
      const download = await fetch(local(ctx, attachment.file));
      t.equal(download.headers.get('content-type'), c.served, `${c.label}: served as ${c.served}`);
      t.match(download.headers.get('content-disposition'), c.inline ? /^inline;/ : /^attachment;/, `${c.label}: ${c.inline ? 'inline' : 'a download'}`);
      t.equal(download.headers.get('x-content-type-options'), 'nosniff');
      t.equal(download.headers.get('content-security-policy'), "default-src 'none'; sandbox");
      t.ok(Buffer.from(await download.arrayBuffer()).equals(c.bytes), `${c.label}: bytes unchanged`);
    }
  });

  t.test(name('sizes around the sniff buffer come back byte for byte'), async (t) => {
    const ctx = await setup(t);
    // The first 4100 bytes are read for detection and put back: every size around that edge,
    // one request chunk or many, must come back unchanged.
    for (const size of [1, 4099, 4100, 4101, 5000, 65_536, 300_000]) {
      const data = randomBytes(size);
      const res = await upload(ctx, ctx.alice, new Blob([data]), `${size}.bin`);
      t.equal(res.status, 201, `${size} bytes accepted`);
      const attachment = (await res.json()) as AttachmentView;
      t.equal(attachment.size, size, `${size}: size`);
      const download = await fetch(local(ctx, attachment.file));
      t.ok(Buffer.from(await download.arrayBuffer()).equals(data), `${size}: same bytes`);
    }
    const streamed = await uploadStream(ctx, ctx.alice, 2 * MiB + 3);
    t.equal(streamed.status, 201, 'a chunked upload of many small request chunks');
    t.match(await streamed.json(), { size: 2 * MiB + 3, content_type: 'text/plain' });
  });

  t.test(name('range requests'), async (t) => {
    const ctx = await setup(t);
    const data = randomBytes(10_000);
    const attachment = (await (await upload(ctx, ctx.alice, new Blob([data]), 'data.bin')).json()) as AttachmentView;
    const url = local(ctx, attachment.file);
    const ranged = (range: string, headers: Record<string, string> = {}) => fetch(url, { headers: { range, ...headers } });

    for (const [range, start, end] of [
      ['bytes=0-9', 0, 9],
      ['bytes=9990-', 9990, 9999],
      ['bytes=-5', 9995, 9999],
      ['bytes=9000-20000', 9000, 9999],
      ['bytes=0-0', 0, 0],
    ] as const) {
      const res = await ranged(range);
      t.equal(res.status, 206, `${range}: 206`);
      t.equal(res.headers.get('content-range'), `bytes ${start}-${end}/10000`, `${range}: Content-Range`);
      t.equal(res.headers.get('content-length'), String(end - start + 1));
      t.equal(res.headers.get('accept-ranges'), 'bytes');
      t.ok(Buffer.from(await res.arrayBuffer()).equals(data.subarray(start, end + 1)), `${range}: the right bytes`);
    }
    for (const range of ['bytes=10000-', 'bytes=20000-30000', 'bytes=-0']) {
      const res = await ranged(range);
      t.equal(res.status, 416, `${range}: 416`);
      t.equal(res.headers.get('content-range'), 'bytes */10000');
      await res.arrayBuffer();
    }
    for (const range of ['bytes=0-1,5-6', 'items=0-1', 'bytes=5-1']) {
      const res = await ranged(range);
      t.equal(res.status, 200, `${range}: ignored, whole file`);
      t.equal((await res.arrayBuffer()).byteLength, 10_000);
    }
    const etag = (await drain(fetch(url, { method: 'HEAD' }))).headers.get('etag') ?? '';
    const stale = await ranged('bytes=0-9', { 'if-range': '"something-else"' });
    t.equal(stale.status, 200, 'If-Range that does not match: whole file');
    await stale.arrayBuffer();
    const fresh = await ranged('bytes=0-9', { 'if-range': etag });
    t.equal(fresh.status, 206, 'If-Range that matches: the range');
    await fresh.arrayBuffer();
    const head = await drain(fetch(url, { method: 'HEAD', headers: { range: 'bytes=0-9' } }));
    t.equal(head.status, 206, 'HEAD with a range');
    t.equal(head.headers.get('content-length'), '10');
    const notModified = await drain(fetch(url, { headers: { 'if-none-match': etag } }));
    t.equal(notModified.status, 304, 'If-None-Match: 304');
  });

  t.test(name('deleting the message removes its files for good'), async (t) => {
    const ctx = await setup(t);
    const kept = await createMessage(ctx, ctx.alice, 'this one stays');
    const first = (await (await upload(ctx, ctx.alice, new Blob([PNG]), 'one.png')).json()) as AttachmentView;
    const second = (await (await upload(ctx, ctx.alice, new Blob(['two']), 'two.txt')).json()) as AttachmentView;
    const other = (await (await upload(ctx, ctx.alice, new Blob(['other']), 'other.txt', { messageId: kept })).json()) as AttachmentView;
    t.equal((await ctx.backend.objects()).length, 3);

    const deleted = await call(ctx.app, 'DELETE', `/api/conversations/${ctx.conversationId}/messages/${ctx.messageId}/`, { token: ctx.alice.token });
    t.equal(deleted.status, 204);
    await ctx.backend.deletesSettled();

    for (const attachment of [first, second]) {
      t.equal((await drain(fetch(local(ctx, attachment.file)))).status, 404, `${attachment.filename}: signed link 404`);
      const path = new URL(attachment.file).pathname;
      const byToken = await drain(fetch(`${ctx.base}${path}`, { headers: { authorization: `Bearer ${ctx.alice.token}` } }));
      t.equal(byToken.status, 404, `${attachment.filename}: token 404`);
    }
    const remaining = await ctx.backend.objects();
    t.equal(remaining.length, 1, "the deleted message's objects are gone from storage");
    t.equal((await drain(fetch(local(ctx, other.file)))).status, 200, "another message's file is untouched");

    const list = await call(ctx.app, 'GET', `/api/conversations/${ctx.conversationId}/messages/${ctx.messageId}/attachments/`, { token: ctx.bob.token });
    t.same(list.json, [], 'the deleted message lists no attachments');
    const messages = await call(ctx.app, 'GET', `/api/conversations/${ctx.conversationId}/messages/`, { token: ctx.bob.token });
    t.match(messages.json.find((m: { id: number }) => m.id === ctx.messageId), { is_deleted: true, content: '', attachments: [] });
    const events = await readEvents(ctx.database, ctx.app.links, ctx.conversationId, 0, 100);
    t.notOk(
      events.some((event) => event.type === 'attachment.added' && event.message_id === ctx.messageId),
      'replaying the log does not bring the files back',
    );
  });

  t.test(name('a message deleted while its file uploads keeps nothing; a lost object is a 404'), async (t) => {
    const ctx = await setup(t);
    // The race: the upload passed the early checks, then the message is deleted before the
    // write path runs. The write path refuses (409) and the stored object must go.
    const attachments = ctx.app.attachments;
    const addAttachment = attachments.add.bind(attachments);
    attachments.add = async (actor, conversationId, messageId, file) => {
      const deleted = await call(ctx.app, 'DELETE', `/api/conversations/${conversationId}/messages/${messageId}/`, { token: ctx.alice.token });
      t.equal(deleted.status, 204, 'deleted mid-upload');
      return addAttachment(actor, conversationId, messageId, file);
    };
    const res = await upload(ctx, ctx.alice, new Blob([randomBytes(100_000)]), 'late.bin');
    attachments.add = addAttachment;
    t.equal(res.status, 409, 'the write path refuses');
    t.same(await ctx.backend.objects(), [], 'the uploaded object is removed');
    t.equal(await attachmentRows(ctx), 0, 'no row');

    const other = await createMessage(ctx, ctx.alice, 'another');
    const attachment = (await (await upload(ctx, ctx.alice, new Blob([PNG]), 'gone.png', { messageId: other })).json()) as AttachmentView;
    const [key] = await ctx.backend.objects();
    await ctx.backend.storage.delete(key ?? '');
    t.equal((await drain(fetch(local(ctx, attachment.file)))).status, 404, 'row without its object: 404, not 500');
  });

  t.test(name(`S3_SERVE_MODE=redirect ${kind === 's3' ? 'redirects to a presigned URL' : 'falls back to streaming'}`), async (t) => {
    const ctx = await setup(t, { S3_SERVE_MODE: 'redirect' });
    const data = Buffer.concat([PNG, randomBytes(50_000)]);
    const attachment = (await (await upload(ctx, ctx.alice, new Blob([data]), 'shot.png')).json()) as AttachmentView;
    const res = await fetch(local(ctx, attachment.file), { redirect: 'manual' });
    const path = new URL(attachment.file).pathname;
    const outsider = await drain(fetch(`${ctx.base}${path}`, { redirect: 'manual', headers: { authorization: `Bearer ${ctx.outsider.token}` } }));
    t.equal(outsider.status, 404, 'the same authorization comes first');
    // One character of the signature changed (to one it cannot already be).
    const tampered = await drain(fetch(local(ctx, attachment.file).replace(/sig=(.)/, (_, c: string) => `sig=${c === 'A' ? 'B' : 'A'}`), { redirect: 'manual' }));
    t.equal(tampered.status, 403);
    if (kind === 'local') {
      t.equal(res.status, 200, 'local storage cannot presign: streamed instead');
      t.ok(Buffer.from(await res.arrayBuffer()).equals(data));
      return;
    }
    t.equal(res.status, 302);
    await res.arrayBuffer();
    const location = new URL(res.headers.get('location') ?? '');
    t.match(location.searchParams.get('X-Amz-Signature'), /^[0-9a-f]{64}$/, 'a presigned URL');
    t.equal(location.searchParams.get('X-Amz-Expires'), '60', 'short-lived');
    t.equal(res.headers.get('cache-control'), 'private, no-store');
    const fromBucket = await fetch(location);
    t.equal(fromBucket.status, 200, 'the presigned URL downloads');
    t.ok(Buffer.from(await fromBucket.arrayBuffer()).equals(data), 'same bytes');
    t.equal(fromBucket.headers.get('content-type'), 'image/png');
    t.equal(fromBucket.headers.get('content-disposition'), `inline; filename="shot.png"; filename*=UTF-8''shot.png`);
    const unsigned = await drain(fetch(`${location.origin}${location.pathname}`));
    t.equal(unsigned.status, 403, 'the object itself is not public');

    const byToken = await drain(fetch(`${ctx.base}${path}`, { redirect: 'manual', headers: { authorization: `Bearer ${ctx.bob.token}` } }));
    t.equal(byToken.status, 302, 'a participant token redirects too');
  });
}

/** A storage whose deletes can be awaited (the app starts them without waiting). */
function tracked(storage: Storage, objects: () => Promise<string[]>): Backend {
  const pending = new Set<Promise<unknown>>();
  return {
    objects,
    storage: {
      ...storage,
      delete(key) {
        const deletion = storage.delete(key);
        pending.add(deletion);
        void deletion.finally(() => pending.delete(deletion)).catch(() => {});
        return deletion;
      },
    },
    async deletesSettled() {
      await Promise.allSettled([...pending]);
    },
  };
}

async function upload(
  ctx: Context,
  session: Session | null,
  blob: Blob,
  filename: string,
  target: { conversationId?: number; messageId?: number } = {},
): Promise<Response> {
  const form = new FormData();
  form.append('file', blob, filename);
  const url = `${ctx.base}/api/conversations/${target.conversationId ?? ctx.conversationId}/messages/${target.messageId ?? ctx.messageId}/attachments/`;
  return fetch(url, { method: 'POST', headers: session ? { authorization: `Bearer ${session.token}` } : {}, body: form });
}

/** A multipart upload of `size` generated bytes sent chunked: no Content-Length anywhere. */
async function uploadStream(ctx: Context, session: Session, size: number): Promise<Response> {
  const boundary = `----test${randomBytes(8).toString('hex')}`;
  async function* body() {
    yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="stream.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let sent = 0; sent < size; sent += chunk.length) yield chunk.subarray(0, Math.min(chunk.length, size - sent));
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  return fetch(`${ctx.base}/api/conversations/${ctx.conversationId}/messages/${ctx.messageId}/attachments/`, {
    method: 'POST',
    headers: { authorization: `Bearer ${session.token}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
    body: body(),
    duplex: 'half',
  });
}

async function createMessage(ctx: Context, session: Session, content: string): Promise<number> {
  const res = await call(ctx.app, 'POST', `/api/conversations/${ctx.conversationId}/messages/`, { token: session.token, body: { content } });
  return res.json.id;
}

/** Rows for the conversation's attachments, straight from the database. */
async function attachmentRows(ctx: Context): Promise<number> {
  const [row] = await ctx.database.query<{ n: number }>(sql`
    select count(*)::int as n from attachments a join messages m on m.id = a.message_id where m.conversation_id = ${ctx.conversationId}`);
  return Number(row?.n);
}

/** The signed URL (on PUBLIC_URL) pointed at the test listener. */
function local(ctx: Context, url: string): string {
  const parsed = new URL(url);
  return `${ctx.base}${parsed.pathname}${parsed.search}`;
}

/** `file` is re-signed on every read (its expiry may step), so objects are compared without it. */
function withoutFile(attachment: AttachmentView): Omit<AttachmentView, 'file'> & { path: string } {
  const { file, ...rest } = attachment;
  return { ...rest, path: new URL(file).pathname };
}

async function drain(response: Promise<Response>): Promise<Response> {
  const res = await response;
  await res.arrayBuffer();
  return res;
}
