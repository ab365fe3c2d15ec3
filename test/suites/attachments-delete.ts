/**
 * Deleting a message removes its files for good, also when it is deleted while a file uploads;
 * a row whose object is lost is a 404.
 */
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import type { AttachmentView } from '../../src/contract/messages.js';
import { readEvents } from '../../src/messages/event-log.js';
import { call } from '../helpers/api.js';
import type { AttachmentSuiteContext } from '../helpers/attachments-context.js';
import { attachmentRows, createMessage, drain, local, PNG, upload } from '../helpers/attachments-requests.js';

export function attachmentsDeleteSuite(t: Test, { setup, name }: AttachmentSuiteContext): void {
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
}
