/**
 * REST through `ChatClient` against the in-process service: accounts, users, conversations,
 * messages (paging, idempotent sends, edits, deletes), attachments and notifications; and
 * the errors it raises (`ApiError` with the service's error shape, `NetworkError`).
 */
import type { Test } from 'tap';
import { ApiError, ChatClient, type MessageView, NetworkError } from '@chat-service/client';
import { randomName } from '../helpers/api.js';
import { poll } from '../helpers/client-harness.js';
import { history, newUser, PASSWORD, PNG, rejection, type Server } from '../helpers/client-service.js';
import { freePort } from '../helpers/ports.js';

export async function clientRestSuite(t: Test, server: Server): Promise<void> {
  const { base } = server;

  await t.test('REST through ChatClient', async (t) => {
    const anonymous = new ChatClient({ baseUrl: `${base}/` });
    t.equal(anonymous.baseUrl, base, 'a trailing slash on baseUrl is dropped');
    const username = randomName('rest');
    const session = await anonymous.register(username, PASSWORD);
    t.equal(anonymous.token, session.token, 'register sets the token');
    t.match(session, { token: String, user: { id: Number, username } });
    t.same(await anonymous.me(), session.user, 'me() with the registered token');

    const device = new ChatClient({ baseUrl: base });
    t.equal(device.token, undefined);
    const login = await device.login(username.toUpperCase(), PASSWORD);
    t.equal(device.token, login.token, 'login sets the token');
    t.same(login.user, session.user, 'login (usernames are case-insensitive) is the same user');
    t.same(await device.me(), session.user);

    const alice = anonymous;
    const bob = await newUser(base);
    const found = await alice.searchUsers(bob.username.slice(0, 6));
    t.ok(found.some((user) => user.id === bob.id && user.username === bob.username), 'searchUsers finds bob by prefix');
    t.same(await alice.searchUsers(`zz${randomName()}`), [], 'and nobody for an unknown prefix');

    const conversation = await alice.createConversation([bob.id]);
    t.match(conversation, { id: Number, created_at: String, last_seq: 0 });
    t.same([...conversation.participants].sort(), [username, bob.username].sort(), 'participants are usernames, the caller included');
    const byName = await bob.client.createConversation([username]);
    t.same([...byName.participants].sort(), [username, bob.username].sort(), 'participants may be given as usernames');
    const listed = await alice.listConversations();
    t.ok(listed.some((c) => c.id === conversation.id), 'listConversations has it');
    t.same((await alice.listConversations(1)).length, 1, 'listConversations(limit)');
    const fetched = await bob.client.getConversation(conversation.id);
    t.match(fetched, { id: conversation.id, created_at: conversation.created_at, last_seq: 0 }, 'getConversation for the other participant');
    t.same([...fetched.participants].sort(), [...conversation.participants].sort());

    const sent: MessageView[] = [];
    for (let i = 1; i <= 5; i++) sent.push(await alice.sendMessage(conversation.id, `message ${i}`, `rest-${i}`));
    t.match(sent[0], { id: Number, sender: username, content: 'message 1', is_edited: false, is_deleted: false, attachments: [], client_id: 'rest-1' });
    const again = await alice.sendMessage(conversation.id, 'message 1, sent twice', 'rest-1');
    t.same(again, sent[0], 'the same client_id again returns the first message, not a second');
    const plain = await alice.sendMessage(conversation.id, 'no client id');
    t.equal(plain.client_id, null, 'without clientId: client_id null');
    sent.push(plain);

    const newest = await bob.client.listMessages(conversation.id, { limit: 2 });
    t.same(newest.map((m) => m.id), sent.slice(-2).map((m) => m.id), 'limit 2: the newest two, ascending');
    const older = await bob.client.listMessages(conversation.id, { limit: 2, before: newest[0]!.id });
    t.same(older.map((m) => m.id), sent.slice(-4, -2).map((m) => m.id), 'before: the page before it');
    const newer = await bob.client.listMessages(conversation.id, { after: sent[1]!.id });
    t.same(newer.map((m) => m.id), sent.slice(2).map((m) => m.id), 'after: the newer ones');
    t.same((await history(bob.client, conversation.id, 2)).map((m) => m.id), sent.map((m) => m.id), 'paging back with limit/before yields all 6 once, in order');
    t.same((await bob.client.listMessages(conversation.id)).map((m) => m.id), sent.map((m) => m.id), 'default page');

    const edited = await alice.editMessage(conversation.id, sent[1]!.id, 'message 2, edited');
    t.match(edited, { id: sent[1]!.id, content: 'message 2, edited', is_edited: true });
    t.equal(await alice.deleteMessage(conversation.id, sent[2]!.id), undefined, 'deleteMessage resolves (204)');
    const afterDelete = await bob.client.listMessages(conversation.id);
    t.match(afterDelete.find((m) => m.id === sent[2]!.id), { is_deleted: true, content: '', attachments: [] }, 'the deleted message stays, emptied');
    t.match(afterDelete.find((m) => m.id === sent[1]!.id), { content: 'message 2, edited', is_edited: true });

    const attachment = await alice.uploadAttachment(conversation.id, sent[0]!.id, new Blob([PNG], { type: 'image/png' }), 'dot.png');
    t.match(attachment, { id: Number, filename: 'dot.png', content_type: 'image/png', size: PNG.length, uploaded_at: String, file: String });
    t.ok(attachment.file.startsWith(`${base}/`), `file is an absolute URL on the service (${attachment.file})`);
    t.same(await bob.client.listAttachments(conversation.id, sent[0]!.id), [attachment], 'listAttachments has it');
    const download = await fetch(attachment.file);
    t.equal(download.status, 200, 'the signed file URL works without a header');
    t.same(Buffer.from(await download.arrayBuffer()), PNG, 'and serves the uploaded bytes');
    t.match((await bob.client.listMessages(conversation.id, { limit: 200 })).find((m) => m.id === sent[0]!.id)?.attachments, [{ id: attachment.id }]);

    // Notifications: bob was added to two conversations and got news from alice (coalesced, ~100 ms).
    await poll('bob to have a "messages.new" notification', async () =>
      (await bob.client.listNotifications()).some((n) => n.kind === 'messages.new' && n.conversation_id === conversation.id),
    );
    const notifications = await bob.client.listNotifications();
    t.ok(notifications.some((n) => n.kind === 'conversation.added' && n.conversation_id === conversation.id), 'added to the conversation');
    const news = notifications.find((n) => n.kind === 'messages.new' && n.conversation_id === conversation.id)!;
    t.match(news, { id: Number, message: String, is_read: false, timestamp: String });
    t.same(notifications.map((n) => n.id), [...notifications.map((n) => n.id)].sort((a, b) => b - a), 'newest first');
    t.same((await bob.client.listNotifications({ limit: 1 })).map((n) => n.id), [notifications[0]!.id], 'limit');
    t.same((await bob.client.listNotifications({ before: notifications[0]!.id })).map((n) => n.id), notifications.slice(1).map((n) => n.id), 'before');
    const read = await bob.client.readNotification(news.id);
    t.match(read, { id: news.id, is_read: true }, 'readNotification');
    const unread = await bob.client.listNotifications({ unread: true });
    t.notOk(unread.some((n) => n.id === news.id), 'no longer unread');
    t.equal(await bob.client.readAllNotifications(), unread.length, 'readAllNotifications returns how many it marked');
    t.same(await bob.client.listNotifications({ unread: true }), [], 'none unread after read-all');
  });

  await t.test('ApiError carries statusCode, error and message; NetworkError when nobody answers', async (t) => {
    const alice = await newUser(base);
    const bob = await newUser(base);
    const carol = await newUser(base);
    const conversation = await alice.client.createConversation([bob.id]);
    const message = await alice.client.sendMessage(conversation.id, 'hello');

    const expectApiError = async (promise: Promise<unknown>, statusCode: number, error: string, message: RegExp, what: string) => {
      const caught = await rejection(promise);
      t.ok(caught instanceof ApiError, `${what}: an ApiError`);
      t.match(caught, { name: 'ApiError', statusCode, error, message, retryAfter: undefined }, `${what}: ${statusCode} ${error}`);
    };
    await expectApiError(alice.client.createConversation(['no_such_user_zz']), 400, 'Bad Request', /no_such_user_zz/, 'unknown participant');
    await expectApiError(alice.client.sendMessage(conversation.id, '   '), 400, 'Bad Request', /content/, 'blank content');
    await expectApiError(new ChatClient({ baseUrl: base, token: 'not-a-token' }).me(), 401, 'Unauthorized', /./, 'bad token');
    await expectApiError(new ChatClient({ baseUrl: base }).listConversations(), 401, 'Unauthorized', /./, 'no token');
    await expectApiError(new ChatClient({ baseUrl: base }).login(alice.username, 'wrong password!'), 401, 'Unauthorized', /./, 'wrong password');
    await expectApiError(bob.client.editMessage(conversation.id, message.id, 'not mine'), 403, 'Forbidden', /./, "editing someone else's message");
    await expectApiError(bob.client.deleteMessage(conversation.id, message.id), 403, 'Forbidden', /./, "deleting someone else's message");
    await expectApiError(carol.client.getConversation(conversation.id), 404, 'Not Found', /./, 'a conversation carol is not in');
    await expectApiError(alice.client.getConversation(2_000_000_000), 404, 'Not Found', /./, 'no such conversation');
    await expectApiError(alice.client.listAttachments(conversation.id, 9_999_999), 404, 'Not Found', /./, 'no such message');
    await expectApiError(new ChatClient({ baseUrl: base }).register(alice.username, PASSWORD), 409, 'Conflict', /./, 'a taken username');
    await alice.client.deleteMessage(conversation.id, message.id);
    await expectApiError(alice.client.editMessage(conversation.id, message.id, 'too late'), 409, 'Conflict', /./, 'editing a deleted message');

    const closedPort = await freePort();
    const caught = await rejection(new ChatClient({ baseUrl: `http://127.0.0.1:${closedPort}` }).login('nobody', PASSWORD));
    t.ok(caught instanceof NetworkError, 'a refused connection is a NetworkError, not an ApiError');
    t.match(caught, { name: 'NetworkError', message: /no answer/ });
  });
}
