/** The small pure parts of attachments: filenames, disposition, ranges, sniffing, peeking. */
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import t from 'tap';
import { contentDisposition, isInlineSafe, sanitizeFilename } from '../src/attachments/disposition.js';
import { parseRange } from '../src/attachments/range.js';
import { detectContentType, newStorageKey, peek, SNIFF_BYTES, storeUpload, UploadSourceError } from '../src/attachments/upload.js';
import { ObjectTooLargeError, type Storage } from '../src/storage/storage.js';

t.test('sanitizeFilename keeps the last segment, drops what is unsafe', async (t) => {
  const cases: [string | undefined, string][] = [
    ['photo.jpg', 'photo.jpg'],
    ['../../etc/passwd', 'passwd'],
    ['..\\..\\x', 'x'],
    ['/etc/shadow', 'shadow'],
    ['C:\\Windows\\win.ini', 'win.ini'],
    ['C:evil.txt', 'evil.txt'],
    ['dir/', 'file'],
    ['..', 'file'],
    ['.', 'file'],
    ['', 'file'],
    [undefined, 'file'],
    ['  spaced name.txt  ', 'spaced name.txt'],
    ['trailing. . ', 'trailing'],
    ['.bashrc', '.bashrc'],
    ['nul\u0000byte\u0007.txt', 'nulbyte.txt'],
    ['line\r\nbreak.txt', 'linebreak.txt'],
    ['invoice\u202efdp.exe', 'invoicefdp.exe'],
    ['zero\u200bwidth.txt', 'zerowidth.txt'],
    ['سند «نهایی».pdf', 'سند «نهایی».pdf'],
    ['e\u0301.txt', '\u00e9.txt'],
  ];
  for (const [raw, expected] of cases) t.equal(sanitizeFilename(raw), expected, JSON.stringify(raw));

  const long = sanitizeFilename(`${'x'.repeat(400)}.png`);
  t.equal(Buffer.byteLength(long), 255, 'at most 255 bytes');
  t.ok(long.endsWith('.png'), 'the extension survives');
  const persian = sanitizeFilename(`${'ک'.repeat(300)}.jpeg`);
  t.ok(Buffer.byteLength(persian) <= 255 && persian.endsWith('.jpeg'), 'cut on a character boundary');
  t.notOk(persian.includes('\ufffd'), 'no broken character');
});

t.test('contentDisposition: ASCII filename= plus RFC 5987 filename*=', async (t) => {
  t.equal(contentDisposition('inline', 'photo.png'), `inline; filename="photo.png"; filename*=UTF-8''photo.png`);
  t.equal(
    contentDisposition('attachment', 'عکس (1).jpg'),
    `attachment; filename="___ (1).jpg"; filename*=UTF-8''%D8%B9%DA%A9%D8%B3%20%281%29.jpg`,
  );
  t.equal(contentDisposition('attachment', 'a"b\\c%d.txt'), `attachment; filename="c_d.txt"; filename*=UTF-8''c%25d.txt`);
  t.equal(contentDisposition('attachment', `it's*.txt`), `attachment; filename="it's*.txt"; filename*=UTF-8''it%27s%2A.txt`);
  t.equal(contentDisposition('attachment', 'café.txt'), `attachment; filename="cafe.txt"; filename*=UTF-8''caf%C3%A9.txt`);
  t.equal(contentDisposition('attachment', 'x\r\nSet-Cookie: a=b'), `attachment; filename="xSet-Cookie: a=b"; filename*=UTF-8''xSet-Cookie%3A%20a%3Db`, 'no header injection');
});

t.test('isInlineSafe: an allow-list', async (t) => {
  for (const type of ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'video/mp4', 'video/webm', 'audio/mpeg', 'audio/ogg', 'application/pdf', 'text/plain', 'TEXT/PLAIN; charset=utf-8']) {
    t.ok(isInlineSafe(type), `${type} inline`);
  }
  for (const type of ['text/html', 'image/svg+xml', 'application/xml', 'text/xml', 'application/javascript', 'text/javascript', 'application/octet-stream', 'application/xhtml+xml', 'image/bmp', 'audio/', 'audio/x"y', '']) {
    t.notOk(isInlineSafe(type), `${JSON.stringify(type)} is a download`);
  }
});

t.test('parseRange', async (t) => {
  const cases: [string | undefined, number, ReturnType<typeof parseRange>][] = [
    [undefined, 100, null],
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=-1000', 100, { start: 0, end: 99 }],
    ['bytes=50-1000', 100, { start: 50, end: 99 }],
    ['bytes=99-99', 100, { start: 99, end: 99 }],
    ['BYTES = 1 - 2', 100, { start: 1, end: 2 }],
    ['bytes=100-', 100, 'unsatisfiable'],
    ['bytes=100-200', 100, 'unsatisfiable'],
    ['bytes=99999999999999999999-', 100, 'unsatisfiable'],
    ['bytes=-0', 100, 'unsatisfiable'],
    ['bytes=0-', 0, 'unsatisfiable'],
    ['bytes=-5', 0, 'unsatisfiable'],
    ['bytes=5-1', 100, null],
    ['bytes=-', 100, null],
    ['bytes=0-1,4-5', 100, null],
    ['items=0-1', 100, null],
    ['bytes=a-b', 100, null],
  ];
  for (const [header, size, expected] of cases) t.same(parseRange(header, size), expected, `${header} of ${size}`);
});

t.test('detectContentType trusts bytes only', async (t) => {
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex');
  t.equal(await detectContentType(png), 'image/png');
  t.equal(await detectContentType(Buffer.from('%PDF-1.7\n')), 'application/pdf');
  t.equal(await detectContentType(Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1')), 'image/gif');
  t.equal(await detectContentType(Buffer.from('<!doctype html><p>hi')), 'text/html');
  t.equal(await detectContentType(Buffer.from('\ufeff\n  <HTML><body>')), 'text/html');
  t.equal(await detectContentType(Buffer.from('<script>alert(1)</script>')), 'text/html');
  t.equal(await detectContentType(Buffer.from('<svg onload="alert(1)">')), 'image/svg+xml');
  t.match(await detectContentType(Buffer.from('<?xml version="1.0"?><x/>')), /xml/);
  t.equal(await detectContentType(Buffer.from('just some words, سلام\n')), 'text/plain');
  t.equal(await detectContentType(Buffer.from('a < b and <b> is bold')), 'text/plain', 'markup only at the start counts');
  t.equal(await detectContentType(Buffer.from([0x00, 0x01, 0x02])), 'application/octet-stream');
  t.equal(await detectContentType(Buffer.from([0xc3, 0x28])), 'application/octet-stream', 'invalid UTF-8');
  t.equal(await detectContentType(Buffer.from('€', 'utf8').subarray(0, 2)), 'text/plain', 'a character cut at the end of the sample');
  t.equal(await detectContentType(Buffer.alloc(0)), 'application/octet-stream');
});

t.test('peek reads a sample and gives every byte back', async (t) => {
  for (const [label, size, chunk] of [
    ['empty', 0, 1],
    ['smaller than the sample', 10, 3],
    ['exactly the sample', SNIFF_BYTES, 1000],
    ['just over, one chunk', SNIFF_BYTES + 1, 65_536],
    ['large, many chunks', 200_000, 1000],
    ['large, small chunks', 20_000, 7],
  ] as const) {
    const data = randomBytes(size);
    const source = Readable.from(chunksOf(data, chunk), { objectMode: false });
    const { head, body } = await peek(source, SNIFF_BYTES);
    t.ok(head.equals(data.subarray(0, head.length)), `${label}: the head is the start`);
    t.ok(head.length >= Math.min(size, SNIFF_BYTES), `${label}: at least the sample (${head.length})`);
    t.ok((await collect(body)).equals(data), `${label}: the whole stream comes back`);
  }

  const failing = new PassThrough();
  failing.write(Buffer.alloc(10));
  setImmediate(() => failing.destroy(new Error('client went away')));
  await t.rejects(peek(failing, SNIFF_BYTES), /client went away/, 'an error before the sample is complete');
  const closed = new PassThrough();
  setImmediate(() => closed.destroy());
  await t.rejects(peek(closed, SNIFF_BYTES), { code: 'ERR_STREAM_PREMATURE_CLOSE' }, 'a stream destroyed without an error');
});

t.test('storeUpload tells the client\'s failures from storage\'s', async (t) => {
  const stored: { key: string; bytes: Buffer; contentType: string }[] = [];
  const storage = fakeStorage(async (key, body, { contentType, maxBytes }) => {
    const bytes = await collect(body);
    if (bytes.length > maxBytes) throw new ObjectTooLargeError(maxBytes);
    stored.push({ key, bytes, contentType });
    return { size: bytes.length };
  });

  const data = Buffer.concat([Buffer.from('<html><body>'), randomBytes(50_000)]);
  const result = await storeUpload(storage, Readable.from(chunksOf(data, 1000), { objectMode: false }), 1_000_000);
  t.match(result, { storageKey: /^attachments\/\d{4}\/\d\d\/[0-9a-f-]{36}$/, contentType: 'application/octet-stream', size: data.length });
  t.ok(stored[0]?.bytes.equals(data), 'every byte reached storage');

  await t.rejects(storeUpload(storage, Readable.from([randomBytes(2000)], { objectMode: false }), 1000), ObjectTooLargeError, 'over the limit');

  const failed = new PassThrough();
  failed.on('error', () => {}); // as @fastify/multipart does on every part
  failed.destroy(new Error('Unexpected end of multipart data'));
  await new Promise((resolve) => setImmediate(resolve));
  const early = await storeUpload(storage, failed, 1000).catch((error: unknown) => error);
  t.ok(early instanceof UploadSourceError, 'a part that failed before we started: the client\'s');
  t.match((early as UploadSourceError).cause, { message: 'Unexpected end of multipart data' });

  for (const [label, fail] of [
    ['errors', (s: PassThrough) => s.destroy(new Error('client went away'))],
    ['is destroyed without an error', (s: PassThrough) => s.destroy()],
  ] as const) {
    const source = new PassThrough();
    source.write(randomBytes(SNIFF_BYTES + 10));
    const pending = storeUpload(storage, source, 1_000_000).catch((error: unknown) => error);
    setImmediate(() => fail(source));
    t.ok((await pending) instanceof UploadSourceError, `a part that ${label} midway: the client's`);
  }

  const broken = fakeStorage(async (_key, body) => {
    body.resume();
    throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  });
  const source = Readable.from([randomBytes(10_000)], { objectMode: false });
  const error = await storeUpload(broken, source, 1_000_000).catch((caught: unknown) => caught);
  t.notOk(error instanceof UploadSourceError, "storage's own failure is not blamed on the client");
  t.match(error, { code: 'ECONNREFUSED' });
  t.ok(source.destroyed, 'and the upload stream is stopped');
});

t.test('storage keys are generated', async (t) => {
  const key = newStorageKey(new Date('2026-03-04T05:06:07Z'));
  t.match(key, /^attachments\/2026\/03\/[0-9a-f-]{36}$/);
  t.not(newStorageKey(), newStorageKey());
});

function* chunksOf(data: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

function fakeStorage(put: Storage['put']): Storage {
  const unused = async (): Promise<never> => {
    throw new Error('not used');
  };
  return { put, get: unused, delete: unused, presignedUrl: unused, ping: async () => true, close: async () => {} };
}
