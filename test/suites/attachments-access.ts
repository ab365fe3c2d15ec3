/**
 * Who may upload, list and download an attachment: the sender, the participants, a signed link
 * (untampered, unexpired, for that attachment), and nobody else; refusals store nothing.
 */
import type { Test } from 'tap';
import type { AttachmentView } from '../../src/contract/messages.js';
import { call, createConversation } from '../helpers/api.js';
import type { AttachmentSuiteContext } from '../helpers/attachments-context.js';
import { attachmentRows, drain, local, PNG, upload } from '../helpers/attachments-requests.js';

export function attachmentsAccessSuite(t: Test, { setup, name }: AttachmentSuiteContext): void {
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
}
