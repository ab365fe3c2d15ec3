/**
 * What is kept of a file: its name as metadata only, its content type from its bytes (active
 * content served as a download), and every byte, whatever the size around the sniff buffer.
 */
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import type { AttachmentView } from '../../src/contract/messages.js';
import type { AttachmentSuiteContext } from '../helpers/attachments-context.js';
import { HTML, KEY_PATTERN, local, MiB, PNG, upload, uploadStream } from '../helpers/attachments-requests.js';

export function attachmentsContentSuite(t: Test, { setup, name }: AttachmentSuiteContext): void {
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
}
