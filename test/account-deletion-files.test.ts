/**
 * Deleting an account takes its attachments' files out of storage (API.md "Sessions": each
 * of its messages is erased as a deleted message is, files removed from storage): the embedded
 * app on local disk storage, the storage directory itself inspected, links fetched from a real
 * listener, and history read back by the other participant.
 */
import t from 'tap';
import type { AttachmentView } from '../src/contract/messages.js';
import { call, createConversation } from './helpers/api.js';
import { attachmentSuiteContext } from './helpers/attachments-context.js';
import { createMessage, drain, local, PNG, upload } from './helpers/attachments-requests.js';

const PASSWORD = 'correct horse battery';
const { setup } = attachmentSuiteContext(t, 'local', 'pglite');

t.test('deleting an account removes its files from storage; its links 404, its messages read as deleted', async (t) => {
  const ctx = await setup(t);
  const attach = async (...args: Parameters<typeof upload>) => {
    const res = await upload(...args);
    t.equal(res.status, 201, `${args[3]} uploaded`);
    return (await res.json()) as AttachmentView;
  };
  // Bob's files in two conversations, alice's in the shared one: only bob's may go.
  const bobMessage = await createMessage(ctx, ctx.bob, 'from bob, with files');
  const bobFiles = [
    await attach(ctx, ctx.bob, new Blob([PNG]), 'bob.png', { messageId: bobMessage }),
    await attach(ctx, ctx.bob, new Blob(['bob notes']), 'bob.txt', { messageId: bobMessage }),
  ];
  const elsewhere = await createConversation(ctx.app, ctx.bob, [ctx.outsider]);
  const elsewhereMessage = await call(ctx.app, 'POST', `/api/conversations/${elsewhere}/messages/`, { token: ctx.bob.token, body: { content: 'another chat' } });
  bobFiles.push(await attach(ctx, ctx.bob, new Blob(['elsewhere']), 'elsewhere.txt', { conversationId: elsewhere, messageId: elsewhereMessage.json.id }));
  const aliceFile = await attach(ctx, ctx.alice, new Blob(['alice keeps this']), 'alice.txt');
  const before = await ctx.backend.objects();
  t.equal(before.length, 4, 'four objects stored');
  for (const file of bobFiles) t.equal((await drain(fetch(local(ctx, file.file)))).status, 200, `${file.filename} downloads before`);

  const deleted = await call(ctx.app, 'DELETE', '/api/users/me/', { token: ctx.bob.token, body: { password: PASSWORD } });
  t.equal(deleted.status, 204, 'account deleted');
  await ctx.backend.deletesSettled();

  const after = await ctx.backend.objects();
  t.equal(after.length, 1, "only alice's object is left in storage");
  t.ok(after.every((key) => before.includes(key)), 'and it is one stored before (no stray files)');
  t.equal((await drain(fetch(local(ctx, aliceFile.file)))).status, 200, "alice's file still downloads: it is hers");

  for (const file of bobFiles) {
    t.equal((await drain(fetch(local(ctx, file.file)))).status, 404, `${file.filename}: signed link 404`);
    const path = new URL(file.file).pathname;
    const byToken = await drain(fetch(`${ctx.base}${path}`, { headers: { authorization: `Bearer ${ctx.outsider.token}` } }));
    t.equal(byToken.status, 404, `${file.filename}: 404 with a participant's token`);
  }

  const history = await call(ctx.app, 'GET', `/api/conversations/${ctx.conversationId}/messages/`, { token: ctx.alice.token });
  t.equal(history.status, 200);
  t.match(
    history.json.find((m: { id: number }) => m.id === bobMessage),
    { is_deleted: true, content: '', attachments: [] },
    "bob's message reads as deleted to alice, with no content and no files",
  );
  t.match(
    history.json.find((m: { id: number }) => m.id === ctx.messageId),
    { is_deleted: false, content: 'see attached', attachments: [{ filename: 'alice.txt' }] },
    "alice's own message and file are untouched",
  );
  const list = await call(ctx.app, 'GET', `/api/conversations/${ctx.conversationId}/messages/${bobMessage}/attachments/`, { token: ctx.alice.token });
  t.same(list.json, [], "bob's message lists no attachments");
  const other = await call(ctx.app, 'GET', `/api/conversations/${elsewhere}/messages/`, { token: ctx.outsider.token });
  t.same(
    other.json.map((m: { content: string; is_deleted: boolean; attachments: unknown[] }) => [m.content, m.is_deleted, m.attachments.length]),
    [['', true, 0]],
    'in the other conversation too',
  );
});
