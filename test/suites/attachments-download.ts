/**
 * How downloads are served: byte ranges and conditional requests, and S3_SERVE_MODE=redirect
 * (a presigned URL on S3, streaming on local storage).
 */
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import type { AttachmentView } from '../../src/contract/messages.js';
import type { AttachmentSuiteContext } from '../helpers/attachments-context.js';
import { drain, local, PNG, upload } from '../helpers/attachments-requests.js';

export function attachmentsDownloadSuite(t: Test, { kind, setup, name }: AttachmentSuiteContext): void {
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
