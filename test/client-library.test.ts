/**
 * The client library (`src/client/`) against a real service: an in-process app listening on a
 * loopback port (PGlite, in-process bus, local storage), driven only through `ChatClient`
 * with the platform's `fetch` and `WebSocket`. Gaps and duplicates, which the real service
 * never produces, come from a small scripted `ws` peer. Reconnects across replica processes
 * are in test/client-reconnect.test.ts.
 */
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { WebSocketServer, type WebSocket as PeerSocket } from 'ws';
import {
  ApiError,
  backoffDelay,
  ChatClient,
  type ChatClientOptions,
  DEFAULT_BACKOFF,
  type MessageView,
  NetworkError,
  SendError,
} from '../src/client/index.js';
import { randomName } from './helpers/api.js';
import { buildTestApp, testDatabase } from './helpers/app.js';
import {
  ChatRecorder,
  chatEventValidator,
  invalidFrames,
  NotificationRecorder,
  notificationEventValidator,
  poll,
  seqProblem,
  bounded,
  WAIT_MS,
  Wire,
  newClientUser,
  type ClientUser,
} from './helpers/client-harness.js';
import { freePort } from './helpers/ports.js';

const PASSWORD = 'correct horse battery';
/** A complete 1x1 PNG. */
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
    '1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5d6a1a30000000049454e44ae426082',
  'hex',
);
/** Fast retries, so a test that must see "no retry" needs to wait only a little. */
const QUICK = { initialMs: 20, maxMs: 200, factor: 2, random: () => 1 };

interface Server {
  base: string;
  /** Open notification sockets, from `/metrics` (counted once the user channel is subscribed). */
  openNotificationSockets(): Promise<number>;
}

/** The service in-process, on a real loopback listener whose PUBLIC_URL is itself (signed links work). */
async function startServer(t: Test, env: Record<string, string> = {}): Promise<Server> {
  const { database } = await testDatabase(t, 'pglite');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const app = await buildTestApp(t, { database, env: { PUBLIC_URL: base, ...env } });
  await app.listen({ port, host: '127.0.0.1' });
  return {
    base,
    async openNotificationSockets() {
      const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      const line = text.split('\n').find((l) => l.startsWith('chat_open_sockets{') && l.includes('kind="notifications"'));
      return line ? Number(line.split(/\s+/).at(-1)) : 0;
    },
  };
}

type User = ClientUser;

/** A registered user whose client talks to `base` with quick retries. */
const newUser = (base: string, options: Partial<ChatClientOptions> = {}): Promise<User> => newClientUser(base, { backoff: QUICK, ...options });

/** Opens a chat socket, closed at the end of `t`. */
function openChat(t: Test, user: User, conversationId: number, lastSeq: number | undefined, label = user.username): ChatRecorder {
  const socket = user.client.chat(conversationId, { lastSeq });
  t.teardown(() => socket.close());
  return new ChatRecorder(socket, `${label}/chat/${conversationId}`);
}

function openNotifications(t: Test, user: User, label = user.username): NotificationRecorder {
  const socket = user.client.notifications();
  t.teardown(() => socket.close());
  return new NotificationRecorder(socket, `${label}/notifications`);
}

/** The rejection of `promise`; throws if it resolves, or is still pending after `timeoutMs`. */
async function rejection(promise: Promise<unknown>, timeoutMs = WAIT_MS): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), timeoutMs)));
  let outcome: 'resolved' | 'pending';
  try {
    outcome = await Promise.race([promise.then(() => 'resolved' as const), pending]);
  } catch (error) {
    return error;
  } finally {
    clearTimeout(timer);
  }
  throw new Error(outcome === 'pending' ? `still pending after ${timeoutMs} ms` : 'expected a rejection, got a value');
}

/** Every message of a conversation through `listMessages` paging (newest page first, then `before`). */
async function history(client: ChatClient, conversationId: number, limit = 200): Promise<MessageView[]> {
  const pages: MessageView[][] = [];
  let before: number | undefined;
  for (;;) {
    const page = await client.listMessages(conversationId, { limit, ...(before !== undefined ? { before } : {}) });
    pages.unshift(page);
    if (page.length < limit) return pages.flat();
    before = page[0]!.id;
  }
}

t.test('backoffDelay', async (t) => {
  const options = { initialMs: 100, maxMs: 5_000, factor: 2 };
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = Math.min(5_000, 100 * 2 ** attempt);
    t.equal(backoffDelay(attempt, { ...options, random: () => 0 }), ceiling / 2, `attempt ${attempt}: random 0 → half the ceiling (${ceiling / 2})`);
    t.equal(backoffDelay(attempt, { ...options, random: () => 1 }), ceiling, `attempt ${attempt}: random 1 → the ceiling (${ceiling})`);
    t.equal(backoffDelay(attempt, { ...options, random: () => 0.5 }), Math.round(ceiling * 0.75), `attempt ${attempt}: random 0.5 → three quarters`);
    for (let i = 0; i < 200; i++) {
      const value = backoffDelay(attempt, { ...options, random: Math.random });
      if (value < ceiling / 2 || value > ceiling) {
        t.fail(`attempt ${attempt}: ${value} outside [${ceiling / 2}, ${ceiling}]`);
        break;
      }
    }
  }

  const ceilings = Array.from({ length: 8 }, (_, attempt) => backoffDelay(attempt, { ...options, random: () => 1 }));
  t.same(ceilings, [100, 200, 400, 800, 1600, 3200, 5000, 5000], 'the ceiling doubles per attempt (factor 2) up to maxMs');
  t.same(
    Array.from({ length: 5 }, (_, attempt) => backoffDelay(attempt, { initialMs: 10, maxMs: 10_000, factor: 3, random: () => 1 })),
    [10, 30, 90, 270, 810],
    'factor 3 triples it',
  );
  t.equal(backoffDelay(10_000, { ...options, random: () => 1 }), 5_000, 'capped at maxMs however many attempts (no Infinity, no NaN)');
  t.equal(backoffDelay(-3, { ...options, random: () => 1 }), 100, 'a negative attempt counts as the first');
  // Lower bounds grow too: attempt n+1 is never shorter than attempt n's shortest, until the cap.
  t.ok(backoffDelay(3, { ...options, random: () => 0 }) >= backoffDelay(2, { ...options, random: () => 1 }), "attempt 3's shortest ≥ attempt 2's longest");

  let calls = 0;
  const random = (): number => {
    calls++;
    return 0.25;
  };
  t.equal(backoffDelay(2, { ...options, random }), Math.round(400 / 2 + 0.25 * 200), 'the delay is computed from the injected random()');
  t.equal(calls, 1, 'random() called once per delay');
  t.not(backoffDelay(4, { ...options, random: () => 0.1 }), backoffDelay(4, { ...options, random: () => 0.9 }), 'different random values, different delays (jitter)');

  const first = backoffDelay(0);
  t.ok(first >= DEFAULT_BACKOFF.initialMs / 2 && first <= DEFAULT_BACKOFF.initialMs, `defaults: the first retry within [${DEFAULT_BACKOFF.initialMs / 2}, ${DEFAULT_BACKOFF.initialMs}] ms (${first})`);
  t.equal(backoffDelay(100, { ...DEFAULT_BACKOFF, random: () => 1 }), DEFAULT_BACKOFF.maxMs, `defaults: capped at ${DEFAULT_BACKOFF.maxMs} ms`);
});

t.test('against a real service', async (t) => {
  const server = await startServer(t);
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

  await t.test('ChatSocket: replay then live, in seq order; send, refusals, edits, deletes, attachments', async (t) => {
    const alice = await newUser(base);
    const bob = await newUser(base);
    const conversation = await alice.client.createConversation([bob.id]);
    // Sent before any socket is open: replayed from last_seq 0.
    const early = [];
    for (let i = 1; i <= 3; i++) early.push(await bob.client.sendMessage(conversation.id, `before the sockets ${i}`));
    const A = openChat(t, alice, conversation.id, conversation.last_seq, 'alice');
    const B = openChat(t, bob, conversation.id, 0, 'bob');
    await Promise.all([A.reach('open'), B.reach('open'), A.reachSeq(3), B.reachSeq(3)]);
    t.same(A.events.map((e) => e.type === 'chat.message' && e.message.id), early.map((m) => m.id), 'the replay brings what was sent before the socket');

    const hello = await bounded(A.socket.send('hello over the socket'), 'send');
    t.match(hello, { id: Number, sender: alice.username, content: 'hello over the socket', seq: 4, client_id: String }, 'send() resolves with the stored message');
    t.match(hello.client_id, /^[0-9a-f-]{36}$/, 'a generated client_id (UUID) is echoed');
    const named = await bounded(A.socket.send('with my own id', 'alice-id-1'), 'send');
    t.equal(named.client_id, 'alice-id-1', 'a given client_id is echoed');
    const fromRest = await bob.client.listMessages(conversation.id, { after: early.at(-1)!.id });
    t.same(fromRest, [hello, named], 'what send() resolved with is what REST serves');

    // Refusals: the promise rejects with the service's error event; the socket stays usable.
    const tooLong = await rejection(A.socket.send('x'.repeat(4001), 'too-long-1'));
    t.ok(tooLong instanceof SendError, 'content over MAX_MESSAGE_LENGTH: SendError');
    t.match(tooLong, { name: 'SendError', event: { type: 'error', code: 'invalid_frame', client_id: 'too-long-1', message: /at most 4000/ } });
    const blank = await rejection(A.socket.send('   '));
    t.match(blank, { name: 'SendError', event: { code: 'invalid_frame', message: /empty/ } }, 'blank content: SendError invalid_frame');
    t.equal(A.socket.state, 'open', 'the socket stays open after a refusal');
    const afterRefusal = await bounded(A.socket.send('still works'), 'send');
    t.equal(afterRefusal.content, 'still works');

    // Someone else's message: an error event (not a send, so no promise) to bob only.
    B.socket.edit(hello.id, 'hijacked');
    await B.until('told forbidden', () => B.errors.length === 1);
    t.match(B.errors[0], { type: 'error', code: 'forbidden' }, "editing alice's message: error event 'forbidden' for bob");
    B.socket.delete(9_999_999);
    await B.until('told not_found', () => B.errors.length === 2);
    t.match(B.errors[1], { type: 'error', code: 'not_found' });

    A.socket.edit(hello.id, 'hello, edited');
    A.socket.delete(named.id);
    const attachment = await alice.client.uploadAttachment(conversation.id, afterRefusal.id, new Blob([PNG], { type: 'image/png' }), 'dot.png');
    const last = (await bob.client.getConversation(conversation.id)).last_seq;
    t.equal(last, 9, '3 + 3 messages, an edit, a delete and an attachment: seq 9');
    await Promise.all([A.reachSeq(last), B.reachSeq(last)]);
    for (const [who, R] of [['alice', A], ['bob', B]] as const) {
      t.notOk(seqProblem(R.seqs(), 1, last), `${who}: seqs 1..${last}, each once, in order`);
      t.match(
        R.events.slice(6),
        [
          { type: 'message.edited', seq: 7, conversation_id: conversation.id, message: { id: hello.id, content: 'hello, edited', is_edited: true } },
          { type: 'message.deleted', seq: 8, message_id: named.id },
          { type: 'attachment.added', seq: 9, message_id: afterRefusal.id, attachment: { id: attachment.id, filename: 'dot.png' } },
        ],
        `${who}: the edit, the delete and the attachment as events`,
      );
      t.same(R.errors.length, who === 'bob' ? 2 : 0, `${who}: only its own errors`);
      t.same(invalidFrames(R.socket === A.socket ? alice.wire.frames : bob.wire.frames, chatEventValidator), [], `${who}: every frame received validates against ChatServerEventSchema`);
    }
    const stored = await history(bob.client, conversation.id);
    t.same(
      B.events.filter((e) => e.type === 'chat.message').map((e) => e.type === 'chat.message' && e.message.id),
      stored.map((m) => m.id),
      'the chat.message events are the stored history',
    );
    t.equal(A.socket.lastSeq, last, 'lastSeq is the last delivered seq');
    t.same(alice.wire.lastSeqs(), [0], 'one connection, resumed from last_seq 0');
  });

  await t.test('ChatSocket: sends the service can never answer still settle, and the socket recovers', async (t) => {
    const alice = await newUser(base);
    const bob = await newUser(base);
    const conversation = await alice.client.createConversation([bob.id]);
    const A = openChat(t, alice, conversation.id, 0, 'alice');
    await A.reach('open');

    // The service refuses a client_id over 64 characters without echoing it: refused up front.
    const longId = await rejection(A.socket.send('hello', 'x'.repeat(65)));
    t.match(longId, { name: 'RangeError', message: /clientId/ }, 'a client_id over 64 characters: RangeError');
    t.match(await rejection(A.socket.send('hello', '')), { name: 'RangeError' }, 'an empty client_id: RangeError');
    t.same(alice.wire.attempts[0]!.sent, [], 'neither was sent');

    // A frame over WS_MAX_PAYLOAD_BYTES (64 KiB) closes the connection with 1009; resent after
    // the reconnect it would close every connection: the send is refused instead.
    const huge = await rejection(A.socket.send('y'.repeat(70_000), 'huge-1'));
    t.ok(huge instanceof SendError, 'a message over the frame limit: SendError');
    t.match(huge, { event: { code: 'invalid_frame', client_id: 'huge-1', message: /1009/ } });
    const waiting = A.stateIndex('waiting');
    t.ok(waiting >= 0, 'the connection was dropped (1009) and is being replaced');
    await A.reach('open', waiting);
    const after = await bounded(A.socket.send('small again'), 'send after the 1009');
    t.equal(after.content, 'small again', 'the socket reconnected and sends again');
    t.equal(alice.wire.attempts.length, 2, 'one reconnect, not a reconnect loop');
    t.same(alice.wire.sentOn('huge-1'), [0], 'the oversized frame was sent once, never resent');
    t.notOk(seqProblem(A.seqs(), 1, 1), 'and it was not stored');
  });

  await t.test('ChatSocket: typing reaches the other participant only', async (t) => {
    const alice = await newUser(base);
    const bob = await newUser(base);
    const conversation = await alice.client.createConversation([bob.id]);
    const A = openChat(t, alice, conversation.id, 0, 'alice');
    const B = openChat(t, bob, conversation.id, 0, 'bob');
    // A delivered event proves each socket has joined the room (typing is live only).
    await alice.client.sendMessage(conversation.id, 'ready?');
    await Promise.all([A.reachSeq(1), B.reachSeq(1)]);

    A.socket.typing(true);
    await B.until('told alice types', () => B.typing.length === 1);
    t.same(B.typing[0], { type: 'user.typing', user: alice.username, is_typing: true, conversation_id: conversation.id });
    A.socket.typing(false);
    await B.until('told alice stopped', () => B.typing.length === 2);
    t.match(B.typing[1], { user: alice.username, is_typing: false });
    // Frames are handled in order: by the time alice's own message comes back, any typing
    // event meant for her would have arrived before it.
    await bounded(A.socket.send('after typing'), 'send');
    await B.reachSeq(2);
    t.same(A.typing, [], 'the typist hears nothing of their own typing');
    t.equal(A.events.length, 2, 'and typing is no conversation event');
    t.same(invalidFrames(bob.wire.frames, chatEventValidator), [], 'typing events validate');
  });

  await t.test('fatal closes: 4401 bad token, 4403 not a participant, and no retry after them', async (t) => {
    const alice = await newUser(base);
    const bob = await newUser(base);
    const carol = await newUser(base);
    const conversation = await alice.client.createConversation([bob.id]);

    const expectFatal = async (user: User, open: () => ChatRecorder | NotificationRecorder, code: number, what: string) => {
      const before = user.wire.attempts.length;
      const recorder = open();
      const pending = recorder instanceof ChatRecorder ? recorder.socket.send('never delivered') : undefined;
      await recorder.until('closed', () => recorder.closed !== undefined);
      t.equal(recorder.closed?.code, code, `${what}: closed with ${code}`);
      t.equal(recorder.socket.state, 'closed', `${what}: state closed`);
      // The service accepts the upgrade, then closes with the code: open, then closed, never waiting.
      t.same(recorder.states.map((s) => s.state), ['open', 'closed'], `${what}: open → closed, no backoff`);
      if (pending) t.match(await rejection(pending), { message: new RegExp(`socket closed \\(${code}`) }, `${what}: a pending send is rejected`);
      // QUICK retries after 20 ms: ten times that without a new attempt means none is coming.
      await delay(200);
      t.equal(user.wire.attempts.length - before, 1, `${what}: one attempt, no retry`);
    };

    const impostor: User = { ...alice, wire: new Wire() };
    impostor.client = new ChatClient({ baseUrl: base, token: `${alice.client.token}x`, WebSocket: impostor.wire.WebSocket, backoff: QUICK });
    await expectFatal(impostor, () => openChat(t, impostor, conversation.id, 0), 4401, 'chat, bad token');
    await expectFatal(impostor, () => openNotifications(t, impostor), 4401, 'notifications, bad token');
    await expectFatal(carol, () => openChat(t, carol, conversation.id, 0), 4403, 'chat, not a participant');
    await expectFatal(carol, () => openChat(t, carol, 2_000_000_000, 0), 4403, 'chat, no such conversation');

    // A socket the caller closed is closed for good too, and says so to late senders.
    const A = openChat(t, alice, conversation.id, 0, 'alice');
    await A.reach('open');
    A.socket.close();
    t.match(A.closed, { code: 1000 }, 'close(): closed 1000');
    t.match(await rejection(A.socket.send('after close')), { message: /closed/ }, 'send() on a closed socket rejects instead of hanging');
  });

  await t.test('NotificationSocket: new messages, and reads made on another device', async (t) => {
    const alice = await newUser(base);
    const bob = await newUser(base);
    const bobPhone = new ChatClient({ baseUrl: base });
    await bobPhone.login(bob.username, PASSWORD);
    const before = await server.openNotificationSockets();
    const N = openNotifications(t, bob, 'bob');
    await N.reach('open');
    await poll('the notification socket to be subscribed', async () => (await server.openNotificationSockets()) === before + 1);

    const conversation = await alice.client.createConversation([bob.id]);
    await N.until('told of the new conversation', () => N.notifications.some((n) => n.kind === 'conversation.added' && n.conversation_id === conversation.id));
    const message = await alice.client.sendMessage(conversation.id, 'are you there?');
    await N.until('told of the message', () => N.notifications.some((n) => n.kind === 'messages.new' && n.message_id === message.id));
    const news = N.notifications.find((n) => n.message_id === message.id)!;
    t.match(news, { id: Number, kind: 'messages.new', conversation_id: conversation.id, is_read: false, count: 1, message: String });
    t.same((await bob.client.listNotifications())[0], news, 'the pushed notification is the stored one');

    await bobPhone.readNotification(news.id);
    await N.until('told of the read', () => N.reads.length === 1);
    t.same(N.reads[0], { type: 'notification.read', id: news.id }, 'a read on another device arrives as a read event');
    await bobPhone.readAllNotifications();
    await N.until('told of the read-all', () => N.reads.length === 2);
    t.same(N.reads[1], { type: 'notification.read', all: true });
    t.equal(N.resyncs, 0, 'no resync without a reconnect');
    t.same(invalidFrames(bob.wire.frames, notificationEventValidator), [], 'every frame validates against NotificationServerEventSchema');
  });
});

t.test('a rate-limited service (MESSAGE_RATE_LIMIT=2): 429 with retryAfter, SendError rate_limited', async (t) => {
  const { base } = await startServer(t, { MESSAGE_RATE_LIMIT: '2' });
  const alice = await newUser(base);
  const bob = await newUser(base);
  const conversation = await alice.client.createConversation([bob.id]);

  // A fixed one-minute window: within two windows at most 4 sends pass, so the 5th is refused at the latest.
  let accepted = 0;
  let limited: unknown;
  for (let i = 0; i < 5 && !limited; i++) {
    try {
      await alice.client.sendMessage(conversation.id, `rest ${i}`);
      accepted++;
    } catch (error) {
      limited = error;
    }
  }
  t.ok(accepted >= 2, `${accepted} sends accepted first`);
  t.ok(limited instanceof ApiError, 'then an ApiError');
  t.match(limited, { statusCode: 429, error: 'Too Many Requests', message: String }, '429');
  const retryAfter = (limited as ApiError).retryAfter;
  t.ok(Number.isInteger(retryAfter) && retryAfter! >= 0 && retryAfter! <= 60, `retryAfter from Retry-After, in seconds (${retryAfter})`);

  const B = openChat(t, bob, conversation.id, 0, 'bob');
  let refused: unknown;
  let resolved = 0;
  for (let i = 0; i < 5 && !refused; i++) {
    try {
      await bounded(B.socket.send(`socket ${i}`, `bob-${i}`), `send ${i}`);
      resolved++;
    } catch (error) {
      refused = error;
    }
  }
  t.ok(resolved >= 2, `${resolved} socket sends resolved first`);
  t.ok(refused instanceof SendError, 'then a SendError');
  t.match(refused, { event: { type: 'error', code: 'rate_limited', client_id: `bob-${resolved}` } }, "the error event's code and client_id");
  t.ok(Number.isInteger((refused as SendError).event.retry_after), 'with retry_after');
  t.equal(B.socket.state, 'open', 'the socket stays open');
  t.same(invalidFrames(bob.wire.frames, chatEventValidator), [], 'every frame validates');
});

/**
 * A scripted peer on loopback: each connection gets the handler for its index. It also answers
 * `POST /api/auth/ws-ticket/` (tickets `ticket-1`, `ticket-2`, … for the bearer `scripted`).
 */
async function scriptedPeer(
  t: Test,
  handlers: Array<(socket: PeerSocket, url: URL) => void>,
): Promise<{ base: string; urls: URL[]; closeCodes: Array<number | undefined>; frames: string[][] }> {
  let tickets = 0;
  const http = createHttpServer((request, response) => {
    const ok = request.method === 'POST' && request.url === '/api/auth/ws-ticket/' && request.headers.authorization === 'Bearer scripted';
    response.writeHead(ok ? 201 : 401, { 'content-type': 'application/json' });
    response.end(JSON.stringify(ok ? { ticket: `ticket-${++tickets}`, expires_in: 30 } : { statusCode: 401, error: 'Unauthorized', message: 'no' }));
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const server = new WebSocketServer({ server: http });
  const urls: URL[] = [];
  const closeCodes: Array<number | undefined> = [];
  const frames: string[][] = [];
  server.on('connection', (socket, request) => {
    const index = urls.push(new URL(request.url ?? '/', 'http://peer')) - 1;
    closeCodes.push(undefined);
    frames.push([]);
    socket.on('message', (data) => frames[index]!.push(data.toString()));
    socket.on('close', (code) => (closeCodes[index] = code));
    const handler = handlers[index];
    if (handler) handler(socket, urls[index]!);
    else socket.close(1011, 'no script for this connection');
  });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(() => {
          http.closeAllConnections();
          http.close(() => resolve());
        });
      }),
  );
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, urls, closeCodes, frames };
}

const CONVERSATION = 7;
const deleted = (seq: number) => JSON.stringify({ type: 'message.deleted', seq, conversation_id: CONVERSATION, message_id: 100 + seq });
const chatMessage = (seq: number, clientId: string, content: string) =>
  JSON.stringify({
    type: 'chat.message',
    seq,
    conversation_id: CONVERSATION,
    message: {
      id: 100 + seq,
      conversation_id: CONVERSATION,
      sender: 'peer',
      sender_id: 1,
      content,
      timestamp: '2024-01-01T12:00:00.000Z',
      is_edited: false,
      is_deleted: false,
      edited_at: null,
      client_id: clientId,
      seq,
      attachments: [],
    },
  });

t.test('scripted peer: a seq gap reconnects with last_seq and is filled; duplicates are dropped', async (t) => {
  const peer = await scriptedPeer(t, [
    (socket) => [1, 2, 4].forEach((seq) => socket.send(deleted(seq))),
    // The replay after last_seq=2, with duplicates of what the client already has.
    (socket) => [3, 4, 5, 5, 2, 6].forEach((seq) => socket.send(deleted(seq))),
  ]);
  t.same([1, 2, 3, 5, 6].map((seq) => chatEventValidator.Check(JSON.parse(deleted(seq)))), [true, true, true, true, true], 'the scripted events are valid events');
  const client = new ChatClient({ baseUrl: peer.base, token: 'scripted', backoff: QUICK });
  const socket = client.chat(CONVERSATION, { lastSeq: 0 });
  t.teardown(() => socket.close());
  const R = new ChatRecorder(socket, 'gap');
  await R.reachSeq(6);
  t.same(R.seqs(), [1, 2, 3, 4, 5, 6], 'delivered 1..6, each once, in order');
  t.equal(peer.urls.length, 2, 'one reconnect, for the gap');
  t.equal(peer.urls[0]!.searchParams.get('last_seq'), '0', 'first connection: last_seq=0');
  t.equal(peer.urls[1]!.searchParams.get('last_seq'), '2', 'the reconnect resumes after the last delivered seq: last_seq=2');
  t.equal(peer.urls[1]!.searchParams.get('ticket'), 'ticket-2', 'with a fresh ticket');
  t.equal(peer.urls[1]!.searchParams.get('token'), null, 'and no token in the URL');
  t.equal(peer.urls[1]!.pathname, `/ws/chat/${CONVERSATION}/`);
  await poll('the first connection to be closed', async () => peer.closeCodes[0] !== undefined);
  t.equal(peer.closeCodes[0], 4000, 'the client dropped the gapped connection itself (4000)');
  t.same(R.states.map((s) => s.state), ['open', 'connecting', 'open'], 'straight to a new connection, no backoff');
});

t.test('scripted peer: a send lost with its connection is resent (same client_id) after the reconnect', async (t) => {
  const peer = await scriptedPeer(t, [
    // Takes the frame and dies without answering, as a replica SIGKILLed mid-send.
    (socket) => socket.once('message', () => socket.terminate()),
    (socket) =>
      socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as { type: string; client_id?: string; message?: string };
        if (frame.type === 'chat_message') socket.send(chatMessage(1, frame.client_id!, frame.message!));
      }),
  ]);
  const client = new ChatClient({ baseUrl: peer.base, token: 'scripted', backoff: QUICK });
  const socket = client.chat(CONVERSATION, { lastSeq: 0 });
  t.teardown(() => socket.close());
  const R = new ChatRecorder(socket, 'resend');
  await R.reach('open');
  const sending = socket.send('lost then resent', 'resend-1');
  await R.reach('waiting');
  // While disconnected: typing is dropped, an edit waits for the connection.
  socket.typing(true);
  socket.edit(101, 'edited while away');
  const message = await bounded(sending, 'the resent send');
  t.match(message, { id: 101, client_id: 'resend-1', content: 'lost then resent' }, 'send() resolves with the answer to the resend');
  await poll('the edit to reach the peer', async () => (peer.frames[1] ?? []).length === 2);
  const first = JSON.parse(peer.frames[0]![0]!) as unknown;
  t.same(first, { type: 'chat_message', message: 'lost then resent', client_id: 'resend-1' });
  t.same(
    peer.frames[1]!.map((text) => JSON.parse(text) as unknown),
    [first, { type: 'edit_message', message_id: 101, content: 'edited while away' }],
    'after the reconnect: the same frame again, then the queued edit; no typing',
  );
  t.same(R.seqs(), [1]);
  t.equal(peer.urls[1]!.searchParams.get('last_seq'), '0', 'resumed from last_seq 0 (nothing delivered yet)');
});

t.test('sessions: sockets use tickets, logout / logoutAll / changePassword / deleteAccount, and 4401 reaches onUnauthorized', async (t) => {
  const { base } = await startServer(t);
  let unauthorized = 0;
  const alice = await newUser(base, { onUnauthorized: () => unauthorized++ });
  const bob = await newUser(base);
  const conversation = await alice.client.createConversation([bob.id]);

  const A = openChat(t, alice, conversation.id, 0, 'alice');
  const N = openNotifications(t, alice);
  await A.reach('open');
  await N.reach('open');
  const urls = alice.wire.attempts.map((attempt) => attempt.url);
  t.ok(urls.length >= 2 && urls.every((url) => url.searchParams.get('ticket') !== null), 'every socket URL carries a ticket');
  t.ok(urls.every((url) => url.searchParams.get('token') === null && !url.href.includes(alice.client.token!)), 'and no token');

  const second = new ChatClient({ baseUrl: base, backoff: QUICK });
  await second.login(alice.username, PASSWORD);
  await alice.client.logout();
  t.equal(alice.client.token, undefined, 'logout forgets the token');
  await A.until('closed', () => A.closed !== undefined);
  await N.until('closed', () => N.closed !== undefined);
  t.equal(A.closed?.code, 4401, 'the chat socket closed with 4401');
  t.equal(N.closed?.code, 4401, 'the notification socket too');
  t.equal(unauthorized, 2, 'onUnauthorized heard both');
  t.equal((await second.me()).username, alice.username, 'another session of the same user goes on');

  t.match(await rejection(second.changePassword('wrong password', 'new password 1')), { statusCode: 403 }, 'a wrong current password → ApiError 403');
  const before = second.token;
  await second.changePassword(PASSWORD, 'new password 1');
  t.not(second.token, before, 'changePassword carries on with a new token');
  t.equal((await second.me()).username, alice.username);
  const third = new ChatClient({ baseUrl: base, backoff: QUICK });
  await third.login(alice.username, 'new password 1');
  await second.logoutAll();
  t.match(await rejection(third.me()), { statusCode: 401 }, 'logoutAll ends every session');

  const fourth = new ChatClient({ baseUrl: base, backoff: QUICK });
  await fourth.login(alice.username, 'new password 1');
  t.match(await rejection(fourth.deleteAccount('wrong password')), { statusCode: 403 }, 'deleteAccount with a wrong password → 403');
  await fourth.deleteAccount('new password 1');
  t.match(await rejection(fourth.login(alice.username, 'new password 1')), { statusCode: 401 }, 'the account is gone');
});
