/**
 * The WebSocket contract of API.md ("WebSocket: chat", "WebSocket: notifications",
 * "Notifications", "Scale-out") against real service processes: any topology from
 * test/helpers/replicas.ts (two or three replicas on Redis, three on a Redis Cluster, or the
 * embedded single node). Cases that need several replicas use `topology.at(i)`, which wraps
 * around, so on one node every client simply shares it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import type { Test } from 'tap';
import { conversationChannel, userChannel } from '../../src/redis/names.js';
import { nowSeconds, signJwt } from '../helpers/jwt.js';
import { randomName } from '../helpers/api.js';
import { ROOT, type Replica, type Topology } from '../helpers/replicas.js';
import {
  chatUrl,
  type ConversationEvent,
  type EventOf,
  isConversationEvent,
  notificationsUrl,
  ofType,
  type ServerEvent,
  WAIT_MS,
  WsClient,
} from '../helpers/ws-client.js';

export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export interface Session {
  token: string;
  user: { id: number; username: string };
}

// --- shared helpers (also used by the fault and frame suites) -----------------------------

export async function registerUser(replica: Replica, prefix = 'u'): Promise<Session> {
  const response = await replica.http('POST', '/api/auth/register/', { body: { username: randomName(prefix), password: 'correct horse battery' } });
  if (response.status !== 201) throw new Error(`register on ${replica.name}: ${response.status} ${response.body}`);
  return response.json as Session;
}

export async function registerUsers(topology: Topology, count: number, prefix = 'u'): Promise<Session[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => registerUser(topology.at(i), prefix)));
}

export async function createConversation(replica: Replica, owner: Session, others: Session[]): Promise<number> {
  const response = await replica.http('POST', '/api/conversations/', { token: owner.token, body: { participants: others.map((o) => o.user.id) } });
  if (response.status !== 201) throw new Error(`create conversation on ${replica.name}: ${response.status} ${response.body}`);
  return (response.json as { id: number }).id;
}

/** A chat socket closed (terminated) when the test ends. */
export async function openChat(
  t: Test,
  replica: Replica,
  conversationId: number | string,
  session: Session | undefined,
  options: { lastSeq?: number; header?: boolean; label?: string; token?: string } = {},
): Promise<WsClient> {
  const token = options.token ?? session?.token;
  const client = await WsClient.connect(chatUrl(replica.wsUrl, conversationId), {
    ...(token !== undefined ? { token } : {}),
    ...(options.header ? { header: true } : {}),
    ...(options.lastSeq !== undefined ? { lastSeq: options.lastSeq } : {}),
    label: options.label ?? `${session?.user.username ?? 'anonymous'}@${replica.name}/chat/${conversationId}`,
  });
  t.teardown(() => client.terminate());
  return client;
}

export async function openNotifications(t: Test, replica: Replica, session: Session | undefined, token = session?.token): Promise<WsClient> {
  const client = await WsClient.connect(notificationsUrl(replica.wsUrl), {
    ...(token !== undefined ? { token } : {}),
    label: `${session?.user.username ?? 'anonymous'}@${replica.name}/notifications`,
  });
  t.teardown(() => client.terminate());
  return client;
}

export const isAnswerTo =
  (clientId: string) =>
  (event: ServerEvent): event is EventOf<'chat.message'> | EventOf<'error'> =>
    (event.type === 'chat.message' && event.message.client_id === clientId) || (event.type === 'error' && event.client_id === clientId);

/**
 * Sends chat messages as fast as the protocol allows: up to `window` frames in flight (past 64
 * queued frames the service stops reading the socket until it catches up), each answered by
 * the sender's own `chat.message` (or an error). Resolves with the answers in send order.
 */
export async function sendMessages(
  client: WsClient,
  messages: { message: string; client_id: string }[],
  window = 32,
  timeoutMs = 30_000,
): Promise<(EventOf<'chat.message'> | EventOf<'error'>)[]> {
  const answers: (EventOf<'chat.message'> | EventOf<'error'>)[] = [];
  let next = 0;
  const sendNext = (): void => {
    const frame = messages[next++];
    if (frame) client.send({ type: 'chat_message', ...frame });
  };
  for (let i = 0; i < Math.min(window, messages.length); i++) sendNext();
  for (const frame of messages) {
    answers.push(await client.waitFor(isAnswerTo(frame.client_id), timeoutMs));
    sendNext();
  }
  return answers;
}

/** Every message of a conversation, ascending, through REST paging (newest page first, then `before`). */
export async function fetchHistory(replica: Replica, conversationId: number, token: string) {
  type Row = { id: number; seq: number; client_id: string | null; content: string; is_deleted: boolean; sender: string };
  const pages: Row[][] = [];
  let before = '';
  for (;;) {
    const response = await replica.http('GET', `/api/conversations/${conversationId}/messages/?limit=200${before}`, { token });
    if (response.status !== 200) throw new Error(`history: ${response.status} ${response.body}`);
    const page = response.json as Row[];
    pages.unshift(page);
    if (page.length < 200) return pages.flat();
    before = `&before=${page[0]!.id}`;
  }
}

/** Where a list of seqs first departs from `from, from+1, …, to`, or undefined if it does not. */
export function seqProblem(seqs: number[], from: number, to: number): string | undefined {
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== from + i) return `at index ${i}: expected seq ${from + i}, got ${seqs[i]} (…${seqs.slice(Math.max(0, i - 3), i + 4).join(',')}…)`;
  }
  if (seqs.length !== to - from + 1) return `${seqs.length} events, expected ${to - from + 1} (last ${seqs.at(-1)})`;
  return undefined;
}

/** Asserts the client saw exactly seqs `from..to`, in order, once each. */
export function assertSeqRun(t: Test, events: ConversationEvent[], from: number, to: number, who: string): void {
  const problem = seqProblem(
    events.map((event) => event.seq),
    from,
    to,
  );
  t.notOk(problem, `${who}: seqs ${from}..${to} in order, no gap, no duplicate`, problem ? { problem } : {});
}

/** Only the keys the seed shows, plus the ones API.md lets the service add. */
function assertKeys(t: Test, event: object, seed: string[], added: string[], what: string): void {
  const keys = Object.keys(event);
  t.ok(seed.every((key) => keys.includes(key)), `${what}: has the seed's keys ${seed.join(', ')}`, { keys });
  t.same(keys.filter((key) => !seed.includes(key) && !added.includes(key)), [], `${what}: no unexpected keys`);
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// --- the suite -------------------------------------------------------------------------------

export async function chatSuite(t: Test, topology: Topology): Promise<void> {
  const at = (index: number) => topology.at(index);

  await t.test('messages, edits and deletes from WS and REST reach every replica in seq order', async (t) => {
    const [a, b, c] = await registerUsers(topology, 3);
    const cid = await createConversation(at(0), a!, [b!, c!]);
    const clients = [
      await openChat(t, at(0), cid, a, { lastSeq: 0 }),
      await openChat(t, at(1), cid, b, { lastSeq: 0, header: true }),
      await openChat(t, at(2), cid, c, { lastSeq: 0 }),
    ];
    const [A, , C] = clients as [WsClient, WsClient, WsClient];
    const eachGets = <T extends ServerEvent>(predicate: (event: ServerEvent) => event is T) =>
      Promise.all(clients.map((client) => client.waitFor(predicate)));

    A.send({ type: 'chat_message', message: '  hello from A  ', client_id: 'hello-1' });
    const created = await eachGets(isAnswerTo('hello-1'));
    const first = created[0]!;
    if (first.type !== 'chat.message') throw new Error(`send failed: ${JSON.stringify(first)}`);
    assertKeys(t, first, ['type', 'message'], ['seq', 'conversation_id'], 'chat.message');
    assertKeys(t, first.message, ['id', 'sender', 'content', 'timestamp', 'is_edited', 'is_deleted', 'attachments'],
      ['conversation_id', 'sender_id', 'edited_at', 'client_id', 'seq'], 'message object');
    t.equal(first.seq, 1, 'the first event of a conversation has seq 1');
    t.match(first.message, {
      id: Number,
      conversation_id: cid,
      sender: a!.user.username,
      sender_id: a!.user.id,
      content: 'hello from A',
      is_edited: false,
      is_deleted: false,
      attachments: [],
      client_id: 'hello-1',
      seq: 1,
    }, 'the sender learns its id and client_id; content is trimmed');
    t.match(first.message.timestamp, ISO, 'timestamp is ISO 8601 UTC');
    const messageId = first.message.id;

    A.send({ type: 'edit_message', message_id: messageId, content: 'hello, edited' });
    const edited = await eachGets(ofType('message.edited'));
    assertKeys(t, edited[0]!, ['type', 'message'], ['seq', 'conversation_id'], 'message.edited');
    t.match(edited[0], { type: 'message.edited', seq: 2, message: { id: messageId, content: 'hello, edited' } });

    const rest = await at(0).http('POST', `/api/conversations/${cid}/messages/`, { token: c!.token, body: { content: 'sent over REST', client_id: 'rest-1' } });
    t.equal(rest.status, 201, 'REST send');
    const viaRest = await eachGets(isAnswerTo('rest-1'));
    t.match(viaRest[1], { type: 'chat.message', seq: 3, message: { id: rest.json.id, sender: c!.user.username, content: 'sent over REST' } },
      'a message sent over REST is delivered over WebSockets');

    const patched = await at(1).http('PATCH', `/api/conversations/${cid}/messages/${rest.json.id}/`, { token: c!.token, body: { content: 'REST, edited' } });
    t.equal(patched.status, 200, 'REST edit');
    await Promise.all(clients.map((client) => client.waitForSeq(4)));

    A.send({ type: 'delete_message', message_id: messageId });
    const deleted = await eachGets(ofType('message.deleted'));
    assertKeys(t, deleted[0]!, ['type', 'message_id'], ['seq', 'conversation_id'], 'message.deleted');
    t.match(deleted[0], { type: 'message.deleted', seq: 5, message_id: messageId });

    const removed = await at(2).http('DELETE', `/api/conversations/${cid}/messages/${rest.json.id}/`, { token: c!.token });
    t.equal(removed.status, 204, 'REST delete');
    await Promise.all(clients.map((client) => client.waitForSeq(6)));

    const expectedTypes = ['chat.message', 'message.edited', 'chat.message', 'message.edited', 'message.deleted', 'message.deleted'];
    for (const client of clients) {
      const events = client.conversationEvents();
      assertSeqRun(t, events, 1, 6, client.label);
      t.same(events.map((event) => event.type), expectedTypes, `${client.label}: event types in order`);
      t.same(client.errors(), [], `${client.label}: no errors`);
    }
    // The same event, byte for byte, on every replica.
    const rawOf = (client: WsClient) => client.raw.filter((_, i) => isConversationEvent(client.events[i]!));
    t.same(rawOf(clients[1]!), rawOf(A), 'replica 2 delivered the same JSON as replica 1');
    t.same(rawOf(C), rawOf(A), 'replica 3 delivered the same JSON as replica 1');

    // A late joiner replays the log as it stands now: deleted text is never served again.
    const late = await openChat(t, at(1), cid, b, { lastSeq: 0, label: 'late joiner' });
    await late.waitForSeq(6);
    assertSeqRun(t, late.conversationEvents(), 1, 6, 'late joiner');
    t.notMatch(late.raw.join('\n'), /hello from A|hello, edited|sent over REST|REST, edited/, 'the replay holds no deleted text');
    t.match(late.events[0], { type: 'chat.message', seq: 1, message: { id: messageId, is_deleted: true, content: '' } });

    const history = await fetchHistory(at(1), cid, b!.token);
    t.match(history, [
      { id: messageId, is_deleted: true, content: '' },
      { id: rest.json.id, is_deleted: true, content: '' },
    ], 'history keeps deleted messages without their text');
  });

  await t.test('typing reaches the others, not the sender, and is not stored', async (t) => {
    const [a, b] = await registerUsers(topology, 2);
    const cid = await createConversation(at(0), a!, [b!]);
    const A = await openChat(t, at(0), cid, a);
    const B = await openChat(t, at(1), cid, b);
    // Typing is live only: both sockets must be in their rooms before it is sent.
    await Promise.all([A.sync(), B.sync()]);

    A.send({ type: 'typing', is_typing: true });
    const typing = await B.waitFor(ofType('user.typing'));
    assertKeys(t, typing, ['type', 'user', 'is_typing'], ['conversation_id'], 'user.typing');
    t.match(typing, { type: 'user.typing', user: a!.user.username, is_typing: true });
    A.send({ type: 'typing', is_typing: false });
    await B.waitFor((event) => event.type === 'user.typing' && !event.is_typing);

    // Typing and messages share the conversation's channel, in publish order: once the sender
    // has its own message back, any typing event meant for it would already be here.
    A.send({ type: 'chat_message', message: 'after typing', client_id: 'after-typing' });
    const own = await A.waitFor(isAnswerTo('after-typing'));
    t.match(own, { type: 'chat.message', seq: 1 }, 'typing took no seq');
    t.equal(A.events.filter(ofType('user.typing')).length, 0, 'the sender does not get its own typing');
    await B.waitFor(isAnswerTo('after-typing'));

    const replay = await openChat(t, at(2), cid, b, { lastSeq: 0 });
    await replay.waitForSeq(1);
    A.send({ type: 'chat_message', message: 'second', client_id: 'second' });
    await replay.waitForSeq(2);
    t.same(replay.events.map((event) => event.type), ['chat.message', 'chat.message'], 'a replay holds no typing');
    const history = await fetchHistory(at(0), cid, a!.token);
    t.same(history.map((m) => m.content), ['after typing', 'second'], 'history holds no typing');
  });

  await t.test('notifications: added to a conversation, coalesced new messages, read on every device', async (t) => {
    const [a, b, c] = await registerUsers(topology, 3);
    const B1 = await openNotifications(t, at(1), b);
    const B2 = await openNotifications(t, at(2), b);
    const C1 = await openNotifications(t, at(0), c);
    await topology.waitSubscribers(userChannel(b!.user.id), new Set([at(1), at(2)]).size);
    await topology.waitSubscribers(userChannel(c!.user.id), 1);

    const cid = await createConversation(at(0), a!, [b!, c!]);
    const isAdded = (event: ServerEvent): event is EventOf<'notification'> =>
      event.type === 'notification' && event.message.kind === 'conversation.added' && event.message.conversation_id === cid;
    const [added] = await Promise.all([B1.waitFor(isAdded), B2.waitFor(isAdded), C1.waitFor(isAdded)]);
    assertKeys(t, added, ['type', 'message'], [], 'notification event');
    assertKeys(t, added.message, ['id', 'message', 'is_read', 'timestamp'], ['kind', 'conversation_id', 'message_id', 'count'], 'notification object');
    t.match(added.message, { id: Number, message: String, is_read: false, timestamp: ISO });
    t.match(added.message.message, a!.user.username, 'the text names who added them');

    // Five messages from A, from two replicas at once (two batchers racing on one row).
    const A = await openChat(t, at(0), cid, a);
    const sent = sendMessages(A, range(1, 3).map((i) => ({ message: `news ${i}`, client_id: `news-${i}` })));
    const restSends = Promise.all([4, 5].map((i) =>
      at(1).http('POST', `/api/conversations/${cid}/messages/`, { token: a!.token, body: { content: `news ${i}` } })));
    await sent;
    t.same((await restSends).map((r) => r.status), [201, 201]);

    const isNews = (event: ServerEvent): event is EventOf<'notification'> =>
      event.type === 'notification' && event.message.kind === 'messages.new' && event.message.conversation_id === cid;
    const newsOf = (client: WsClient) => client.events.filter(isNews);
    await Promise.all([B1, B2].map((client) => client.waitFor((event) => isNews(event) && event.message.count === 5)));
    const rowIds = new Set([...newsOf(B1), ...newsOf(B2)].map((event) => event.message.id));
    t.equal(rowIds.size, 1, 'one unread "new messages" notification, updated in place');
    t.ok(newsOf(B1).length <= 5, `pushes coalesced (${newsOf(B1).length} for 5 messages)`);
    const [rowId] = rowIds;
    const unread = await at(2).http('GET', '/api/notifications/?unread=true', { token: b!.token });
    t.match(unread.json.filter((n: { kind: string }) => n.kind === 'messages.new'), [{ id: rowId, count: 5, is_read: false, conversation_id: cid }],
      'REST lists the one row with the full count');
    t.equal(unread.json.filter((n: { kind: string }) => n.kind === 'messages.new').length, 1, 'exactly one unread row per conversation');

    const read = await at(0).http('POST', `/api/notifications/${rowId}/read/`, { token: b!.token });
    t.equal(read.status, 200);
    t.match(read.json, { id: rowId, is_read: true });
    const readEvents = await Promise.all([B1, B2].map((client) => client.waitFor(ofType('notification.read'))));
    for (const event of readEvents) t.same(event, { type: 'notification.read', id: rowId }, 'the other devices hear of it');

    // A new message after reading starts a new row.
    A.send({ type: 'chat_message', message: 'news 6', client_id: 'news-6' });
    const fresh = await B1.waitFor((event) => isNews(event) && event.message.id !== rowId);
    t.match(fresh, { message: { count: 1, is_read: false } }, 'a new unread row after the old one was read');

    const readAll = await at(1).http('POST', '/api/notifications/read-all/', { token: b!.token });
    t.same(readAll.json, { updated: 2 }, 'read-all marks the added-to and the new row');
    const readAllEvents = await Promise.all([B1, B2].map((client) => client.waitFor((event) => event.type === 'notification.read' && event.all === true)));
    t.same(readAllEvents[0], { type: 'notification.read', all: true });

    // Nobody is notified of their own messages: B's message bumps C's row (to 7) and A's, not B's.
    const fromB = await at(2).http('POST', `/api/conversations/${cid}/messages/`, { token: b!.token, body: { content: 'from B' } });
    t.equal(fromB.status, 201);
    await C1.waitFor((event) => isNews(event) && event.message.count === 7);
    const bUnread = await at(0).http('GET', '/api/notifications/?unread=true', { token: b!.token });
    t.same(bUnread.json, [], 'no notification for your own message');
    const aList = await at(0).http('GET', '/api/notifications/', { token: a!.token });
    t.match(aList.json, [{ kind: 'messages.new', conversation_id: cid, count: 1 }], 'the sender hears only of the others');
    t.equal(aList.json.length, 1, 'the creator was not "added"');
  });

  await t.test('close codes: 4401 for a bad, expired or missing token, 4403 for a conversation not yours', async (t) => {
    const [a, b, outsider] = await registerUsers(topology, 3);
    const cid = await createConversation(at(0), a!, [b!]);
    const secret = topology.jwtSecret;
    const claims = { sub: String(a!.user.id), username: a!.user.username };
    const tokens: [string, string | undefined, boolean?][] = [
      ['no token', undefined],
      ['garbage token', 'not-a-jwt'],
      ['expired token', signJwt({ ...claims, iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 }, secret)],
      ['token signed with another secret', signJwt({ ...claims, exp: nowSeconds() + 3600 }, 'another-secret-0123456789abcdef')],
      ['alg none', signJwt({ ...claims, exp: nowSeconds() + 3600 }, secret, { alg: 'none', typ: 'JWT' })],
      ['bad token in the Authorization header', 'not-a-jwt', true],
    ];
    for (const [what, token, header] of tokens) {
      const chat = await openChat(t, at(1), cid, undefined, { ...(token !== undefined ? { token } : {}), ...(header ? { header } : {}), label: what });
      t.equal((await chat.closed).code, 4401, `chat, ${what}: 4401`);
      const notifications = await WsClient.connect(notificationsUrl(at(1).wsUrl), { ...(token !== undefined ? { token } : {}), ...(header ? { header } : {}) });
      t.equal((await notifications.closed).code, 4401, `notifications, ${what}: 4401`);
    }
    const minted = await openChat(t, at(1), cid, a, { token: signJwt({ ...claims, exp: nowSeconds() + 3600 }, secret) });
    await minted.sync();
    t.pass('a token minted the same way with the right secret is accepted');

    for (const [what, session, target] of [
      ['non-participant', outsider, cid],
      ['nonexistent conversation', a, 2_147_483_647],
      ['conversation id 0', a, 0],
      ['conversation id not a number', a, 'abc'],
      ['conversation id beyond int4', a, '99999999999'],
    ] as const) {
      const client = await openChat(t, at(2), target, session);
      t.equal((await client.closed).code, 4403, `${what}: 4403`);
    }
  });

  await t.test('a frame over WS_MAX_PAYLOAD_BYTES closes the socket with 1009', async (t) => {
    const [a, b] = await registerUsers(topology, 2);
    const cid = await createConversation(at(0), a!, [b!]);
    const big = await openChat(t, at(2), cid, a);
    const other = await openChat(t, at(2), cid, a);
    await big.sync();
    big.send(JSON.stringify({ type: 'chat_message', message: 'x'.repeat(64 * 1024) }));
    t.equal((await big.closed).code, 1009, 'closed with 1009');
    other.send({ type: 'chat_message', message: 'still here', client_id: 'still' });
    t.match(await other.waitFor(isAnswerTo('still')), { type: 'chat.message', seq: 1 }, 'other sockets on that replica are unaffected');
  });

  await t.test('?last_seq=N on another replica replays every later event, then live ones, with no gap or duplicate', async (t) => {
    const [a, b] = await registerUsers(topology, 2);
    const cid = await createConversation(at(0), a!, [b!]);
    const A = await openChat(t, at(0), cid, a, { lastSeq: 0 });
    await sendMessages(A, range(1, 30).map((i) => ({ message: `m${i}`, client_id: `m${i}` })));
    // Joins while the next thirty are being sent: replay and live delivery overlap.
    const more = sendMessages(A, range(31, 60).map((i) => ({ message: `m${i}`, client_id: `m${i}` })));
    const B = await openChat(t, at(1), cid, b, { lastSeq: 10 });
    await more;
    await B.waitForSeq(60);
    assertSeqRun(t, B.conversationEvents(), 11, 60, 'resumed at 10');
    const rawBySeq = (client: WsClient) =>
      new Map(client.events.flatMap((event, i) => (isConversationEvent(event) ? [[event.seq, client.raw[i]!] as const] : [])));
    const live = rawBySeq(A);
    const resumed = rawBySeq(B);
    t.ok([...resumed].every(([seq, raw]) => live.get(seq) === raw), 'replayed events are byte for byte the live ones');

    const upToDate = await openChat(t, at(2), cid, b, { lastSeq: 60 });
    const ahead = await openChat(t, at(1), cid, b, { lastSeq: 999_999 });
    await Promise.all([upToDate.sync(), ahead.sync()]);
    A.send({ type: 'chat_message', message: 'm61', client_id: 'm61' });
    await Promise.all([upToDate.waitForSeq(61), ahead.waitForSeq(61)]);
    assertSeqRun(t, upToDate.conversationEvents(), 61, 61, 'last_seq = newest: live only');
    assertSeqRun(t, ahead.conversationEvents(), 61, 61, 'last_seq beyond the newest: clamped, live from there');
    t.same(B.errors(), []);
  });
}

/**
 * Concurrent senders on every replica into one conversation: every client on every replica
 * sees the same gap-free seq order 1..N, no duplicates, and each sender's messages in the order
 * it sent them.
 */
export async function orderingSuite(t: Test, topology: Topology, { senders = 4, perSender = 150 } = {}): Promise<void> {
  await t.test(`${senders} concurrent senders × ${perSender} messages: one order everywhere`, async (t) => {
    const users = await registerUsers(topology, senders + 1, 'ord');
    const observer = users[senders]!;
    const cid = await createConversation(topology.at(0), observer, users.slice(0, senders));
    const senderClients = await Promise.all(
      users.slice(0, senders).map((user, i) => openChat(t, topology.at(i), cid, user, { lastSeq: 0, label: `sender${i}@${topology.at(i).name}` })),
    );
    const observers = await Promise.all(
      topology.replicas.map((replica) => openChat(t, replica, cid, observer, { lastSeq: 0, label: `observer@${replica.name}` })),
    );
    const total = senders * perSender;
    const started = Date.now();
    await Promise.all(
      senderClients.map((client, s) =>
        sendMessages(client, range(0, perSender - 1).map((i) => ({ message: `s${s} #${i}`, client_id: `s${s}-${i}` }))),
      ),
    );
    const clients = [...senderClients, ...observers];
    await Promise.all(clients.map((client) => client.waitForSeq(total, 60_000)));
    t.comment(`${total} messages through ${topology.replicas.length} replica(s) in ${Date.now() - started} ms`);

    const reference = observers[0]!.conversationEvents().map((event) => (event.type === 'chat.message' ? event.message.id : -1));
    for (const client of clients) {
      const events = client.conversationEvents();
      assertSeqRun(t, events, 1, total, client.label);
      t.same(events.map((event) => (event.type === 'chat.message' ? event.message.id : -1)), reference, `${client.label}: the same messages in the same order`);
      for (let s = 0; s < senders; s++) {
        const order = events.flatMap((event) =>
          event.type === 'chat.message' && event.message.client_id?.startsWith(`s${s}-`) ? [Number(event.message.client_id.slice(`s${s}-`.length))] : [],
        );
        const inOrder = order.length === perSender && order.every((value, i) => value === i);
        t.ok(inOrder, `${client.label}: sender ${s}'s messages in its send order`, inOrder ? {} : { order: order.slice(0, 20) });
      }
      t.same(client.errors(), [], `${client.label}: no errors`);
    }
    const history = await fetchHistory(topology.at(1), cid, observer.token);
    t.same(history.map((m) => m.id), reference, 'PostgreSQL holds the same order');

    // A replay longer than one page (500 events) read back from PostgreSQL.
    const late = await openChat(t, topology.at(topology.replicas.length - 1), cid, observer, { lastSeq: 0, label: 'late joiner' });
    await late.waitForSeq(total, 60_000);
    assertSeqRun(t, late.conversationEvents(), 1, total, 'late joiner');
    t.same(late.raw.filter((_, i) => isConversationEvent(late.events[i]!)), observers[0]!.raw.filter((_, i) => isConversationEvent(observers[0]!.events[i]!)),
      'the replay is byte for byte what was delivered live');
  });
}

/**
 * A replica whose sockets are in none of a conversation's channels receives none of its
 * traffic from Redis. Needs three replicas on Redis or a Redis Cluster.
 */
export async function isolationSuite(t: Test, topology: Topology): Promise<void> {
  await t.test('a replica with no socket in a conversation receives none of its traffic', async (t) => {
    const [r0, r1, r2] = topology.replicas as [Replica, Replica, Replica];
    const [a, b, c, d] = await registerUsers(topology, 4, 'iso');
    const x = await createConversation(r0, a!, [b!]);
    const y = await createConversation(r0, c!, [d!]);
    const A = await openChat(t, r0, x, a);
    const B = await openChat(t, r1, x, b);
    const C = await openChat(t, r2, y, c);
    const D = await openChat(t, r0, y, d);
    const N = await openNotifications(t, r1, b);
    await Promise.all([A.sync(), B.sync(), C.sync(), D.sync()]);
    await topology.waitSubscribers(conversationChannel(x), 2);
    await topology.waitSubscribers(conversationChannel(y), 2);
    await topology.waitSubscribers(userChannel(b!.user.id), 1);
    t.pass('conversation X is subscribed by 2 replicas, Y by 2, B\'s notifications by 1');

    const received = () => r2.metric('chat_bus_payloads_received_total');
    const before = await received();
    A.send({ type: 'typing', is_typing: true });
    await sendMessages(A, range(1, 20).map((i) => ({ message: `x${i}`, client_id: `x${i}` })));
    await B.waitForSeq(20);
    // D publishes on the same replica, after all of X's traffic: Redis delivers a connection's
    // publishes in order, so once C (on r2) has Y's event, r2 would have had X's already.
    D.send({ type: 'chat_message', message: 'y1', client_id: 'y1' });
    await C.waitFor(isAnswerTo('y1'));
    const after = await received();
    t.equal(after - before, 1, `r2 received exactly the one payload of Y (${before} → ${after}), nothing of X`);
    t.ok(before >= 0 && (await r0.metric('chat_bus_payloads_received_total')) > 0, 'the counter counts on replicas that are subscribed');
    t.equal(N.events.length, 0, 'no notification for B (nobody wrote to B)');

    await B.close();
    await topology.waitSubscribers(conversationChannel(x), 1);
    await A.close();
    await topology.waitSubscribers(conversationChannel(x), 0);
    await N.close();
    await topology.waitSubscribers(userChannel(b!.user.id), 0);
    t.pass('the last local socket unsubscribes its replica');
  });
}

/**
 * For a topology whose replicas all started at once on an empty database: every migration is
 * recorded exactly once (they raced under the advisory lock; one applied, the others waited).
 */
export async function migrationsAppliedOnce(t: Test, topology: Topology): Promise<void> {
  await t.test('replicas started at once on an empty database applied each migration once', async (t) => {
    if (!topology.databaseUrl) throw new Error('needs PostgreSQL');
    t.ok(topology.replicas.every((replica) => replica.running), `all ${topology.replicas.length} replicas are ready`);
    const journal = JSON.parse(readFileSync(join(ROOT, 'drizzle', 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] };
    const sql = postgres(topology.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql<{ hash: string }[]>`select hash from drizzle.__drizzle_migrations order by id`;
      t.equal(rows.length, journal.entries.length, `${journal.entries.length} migration(s) recorded once each`);
      t.equal(new Set(rows.map((row) => row.hash)).size, rows.length, 'no migration recorded twice');
      const locks = await sql`select 1 from pg_locks where locktype = 'advisory'`;
      t.equal(locks.length, 0, 'the migration lock was released');
    } finally {
      await sql.end({ timeout: 5 });
    }
    for (const replica of topology.replicas) {
      t.notMatch(replica.log(), /migrat\w* failed|already exists/i, `${replica.name} logged no migration error`);
    }
  });
}
