/**
 * What a chat socket does with bad input, floods and slow readers: malformed frames are
 * answered with error events and the socket stays open; the message rate limit is shared by
 * the replicas; a client that stops reading is closed with 4008 before it can grow the heap.
 */
import type { Test } from 'tap';
import { eventually, type Topology } from '../helpers/replicas.js';
import { type EventOf, ofType, WAIT_MS } from '../helpers/ws-client.js';
import { createConversation, isAnswerTo, openChat, registerUsers, sendMessages } from '../helpers/chat-api.js';

/** A frame and the error code it must be answered with (several when any of them is right). */
type Row = [what: string, frame: unknown, code: string | string[]];

export async function framesSuite(t: Test, topology: Topology): Promise<void> {
  await t.test('malformed frames: each answered with an error event, the socket stays open', async (t) => {
    const replica = topology.at(0);
    const [a, b] = await registerUsers(topology, 2, 'frm');
    const cid = await createConversation(replica, a!, [b!]);
    const other = await createConversation(replica, b!, [a!]);
    const A = await openChat(t, replica, cid, a, { lastSeq: 0 });
    const B = await openChat(t, topology.at(1), cid, b, { lastSeq: 0 });
    const [own, toDelete] = (await sendMessages(A, [
      { message: 'mine', client_id: 'mine' },
      { message: 'to delete', client_id: 'to-delete' },
    ])) as EventOf<'chat.message'>[];
    const [theirs] = (await sendMessages(B, [{ message: 'theirs', client_id: 'theirs' }])) as EventOf<'chat.message'>[];
    A.send({ type: 'delete_message', message_id: toDelete!.message.id });
    await A.waitFor(ofType('message.deleted'));
    const elsewhere = await replica.http('POST', `/api/conversations/${other}/messages/`, { token: b!.token, body: { content: 'in another conversation' } });
    const nested = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

    const rows: Row[] = [
      ['not JSON', 'hello there', 'bad_json'],
      ['truncated JSON', '{"type": "chat_message", "message": "hi"', 'bad_json'],
      ['JSON array', '[{"type":"chat_message","message":"hi"}]', 'invalid_frame'],
      ['JSON number', '42', 'invalid_frame'],
      ['JSON null', 'null', 'invalid_frame'],
      ['JSON string', '"chat_message"', 'invalid_frame'],
      ['unknown type', { type: 'shout', message: 'hi' }, 'unknown_type'],
      ['missing type', { message: 'hi' }, 'unknown_type'],
      ['type not a string', { type: 7, message: 'hi' }, 'unknown_type'],
      ['inherited type name', { type: 'constructor' }, 'unknown_type'],
      ['chat_message without message', { type: 'chat_message' }, 'invalid_frame'],
      ['chat_message with a number', { type: 'chat_message', message: 42 }, 'invalid_frame'],
      ['chat_message with an object', { type: 'chat_message', message: { text: 'hi' } }, 'invalid_frame'],
      ['chat_message empty', { type: 'chat_message', message: '' }, 'invalid_frame'],
      ['chat_message whitespace only', { type: 'chat_message', message: ' \n\t  ' }, 'invalid_frame'],
      ['chat_message over MAX_MESSAGE_LENGTH', { type: 'chat_message', message: 'x'.repeat(4001) }, 'invalid_frame'],
      ['chat_message with a NUL character', { type: 'chat_message', message: 'a\u0000b' }, 'invalid_frame'],
      ['client_id too long', { type: 'chat_message', message: 'hi', client_id: 'c'.repeat(65) }, 'invalid_frame'],
      ['client_id empty', { type: 'chat_message', message: 'hi', client_id: '' }, 'invalid_frame'],
      ['client_id a number', { type: 'chat_message', message: 'hi', client_id: 5 }, 'invalid_frame'],
      ['edit_message with a string id', { type: 'edit_message', message_id: String(own!.message.id), content: 'x' }, 'invalid_frame'],
      ['edit_message with a negative id', { type: 'edit_message', message_id: -1, content: 'x' }, 'invalid_frame'],
      ['edit_message with id 0', { type: 'edit_message', message_id: 0, content: 'x' }, 'invalid_frame'],
      ['edit_message with a fractional id', { type: 'edit_message', message_id: 1.5, content: 'x' }, 'invalid_frame'],
      ['edit_message without content', { type: 'edit_message', message_id: own!.message.id }, 'invalid_frame'],
      ['edit_message with empty content', { type: 'edit_message', message_id: own!.message.id, content: '  ' }, 'invalid_frame'],
      ["edit_message of someone else's message", { type: 'edit_message', message_id: theirs!.message.id, content: 'x' }, 'forbidden'],
      ['edit_message of a deleted message', { type: 'edit_message', message_id: toDelete!.message.id, content: 'x' }, 'conflict'],
      ['edit_message of a nonexistent message', { type: 'edit_message', message_id: 2 ** 40, content: 'x' }, 'not_found'],
      ['edit_message of a message in another conversation', { type: 'edit_message', message_id: elsewhere.json.id, content: 'x' }, 'not_found'],
      ["delete_message of someone else's message", { type: 'delete_message', message_id: theirs!.message.id }, 'forbidden'],
      ['delete_message with a string id', { type: 'delete_message', message_id: 'all' }, 'invalid_frame'],
      ['delete_message of a nonexistent message', { type: 'delete_message', message_id: 2 ** 40 }, 'not_found'],
      ['typing with a non-boolean', { type: 'typing', is_typing: 'yes' }, 'invalid_frame'],
      ['typing without is_typing', { type: 'typing' }, 'invalid_frame'],
      ['binary frame', Buffer.from([0xff, 0xfe, 0x00, 0x81, 0x7b]), ['bad_json', 'invalid_frame']],
      ['deeply nested array', `${'['.repeat(20_000)}${']'.repeat(20_000)}`, 'invalid_frame'],
      ['deeply nested message', `{"type":"chat_message","message":${nested(5_000)}}`, 'invalid_frame'],
    ];

    for (const [what, frame, code] of rows) {
      const from = A.events.length;
      A.send(frame);
      const answer = await A.waitFor((event) => event.type === 'error' || event.type === 'chat.message', WAIT_MS, from);
      if (answer.type !== 'error') {
        t.fail(`${what}: answered ${JSON.stringify(answer).slice(0, 200)}`);
        continue;
      }
      const codes = Array.isArray(code) ? code : [code];
      t.ok(codes.includes(answer.code), `${what}: error ${codes.join(' or ')}`, { got: answer });
      t.ok(typeof answer.message === 'string' && answer.message.length > 0, `${what}: with a message`);
      t.same(Object.keys(answer).filter((key) => !['type', 'code', 'message', 'client_id', 'retry_after'].includes(key)), [], `${what}: error shape`);
    }

    A.send({ type: 'chat_message', message: '', client_id: 'empty-1' });
    t.match(await A.waitFor(isAnswerTo('empty-1')), { type: 'error', code: 'invalid_frame', client_id: 'empty-1' }, 'an error names the client_id of the frame it answers');

    A.send({ type: 'chat_message', message: 'still open', client_id: 'after-table' });
    t.match(await A.waitFor(isAnswerTo('after-table')), { type: 'chat.message', message: { content: 'still open' } }, 'the socket still works after the table');
    await B.waitFor(isAnswerTo('after-table'));
    t.ok(A.isOpen, 'never closed');
    const sent = A.conversationEvents().map((event) => event.seq);
    t.same(sent, [1, 2, 3, 4, 5], 'bad frames took no seq (3 messages, 1 delete, 1 message)');
    t.equal((await replica.http('GET', '/healthz')).status, 200, 'the replica is alive');
    t.notMatch(replica.log(), /chat frame failed/, 'no frame reached the "internal error" path');
  });
}

/** Needs two replicas on Redis, both with MESSAGE_RATE_LIMIT=5. */
export async function rateLimitSuite(t: Test, topology: Topology): Promise<void> {
  await t.test('MESSAGE_RATE_LIMIT is per user across replicas: 8 sends over two replicas, 3 refused', async (t) => {
    const [a, b] = await registerUsers(topology, 2, 'rl');
    const cid = await createConversation(topology.at(0), a!, [b!]);
    const sockets = [await openChat(t, topology.at(0), cid, a), await openChat(t, topology.at(1), cid, a)];
    await Promise.all(sockets.map((socket) => socket.sync()));
    // The limit counts per wall-clock minute: near a window's end the eight sends could straddle
    // two windows. This is the one fixed pause here, and it waits for the clock, not an event.
    const intoWindow = Date.now() % 60_000;
    if (intoWindow > 50_000) await new Promise((resolve) => setTimeout(resolve, 60_000 - intoWindow + 250));

    const answers: (EventOf<'chat.message'> | EventOf<'error'>)[] = [];
    for (let i = 0; i < 8; i++) {
      const socket = sockets[i % 2]!;
      socket.send({ type: 'chat_message', message: `limited ${i}`, client_id: `rl-${i}` });
      answers.push(await socket.waitFor(isAnswerTo(`rl-${i}`)));
    }
    t.same(answers.map((answer) => (answer.type === 'error' ? answer.code : answer.type)),
      ['chat.message', 'chat.message', 'chat.message', 'chat.message', 'chat.message', 'rate_limited', 'rate_limited', 'rate_limited'],
      'the first five pass, the next three are refused, whichever replica they reach');
    for (const answer of answers.filter(ofType('error'))) {
      t.ok(Number.isInteger(answer.retry_after) && answer.retry_after! >= 1 && answer.retry_after! <= 60, 'rate_limited says when to retry', { answer });
    }
    t.ok(sockets.every((socket) => socket.isOpen), 'the sockets stay open');

    const rest = await topology.at(1).http('POST', `/api/conversations/${cid}/messages/`, { token: a!.token, body: { content: 'over REST' } });
    t.equal(rest.status, 429, 'a REST send is refused too');
    const retryAfter = Number(rest.headers.get('retry-after'));
    t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `with Retry-After (${rest.headers.get('retry-after')})`);
    t.match(rest.json, { statusCode: 429, error: 'Too Many Requests', message: String });

    const other = await topology.at(0).http('POST', `/api/conversations/${cid}/messages/`, { token: b!.token, body: { content: 'another user' } });
    t.equal(other.status, 201, 'another user is not limited');
    const limited = await Promise.all(topology.replicas.map((replica) => replica.metric('chat_rate_limited_total', { scope: 'msg' })));
    t.equal(limited.reduce((sum, value) => sum + value, 0), 4, 'the replicas counted 4 refusals between them');
  });
}

/**
 * Needs one replica with a small WS_MAX_BUFFERED_BYTES and MAX_MESSAGE_LENGTH=100000 (big
 * messages fill socket buffers quickly).
 */
export async function slowConsumerSuite(t: Test, topology: Topology): Promise<void> {
  await t.test('a flood of frames is read at the pace the service handles them: none dropped', async (t) => {
    const replica = topology.at(0);
    const [a, b] = await registerUsers(topology, 2, 'fld');
    const cid = await createConversation(replica, a!, [b!]);
    const A = await openChat(t, replica, cid, a);
    await A.sync();
    // Far more than the 64 frames a socket queues: all sent at once, every one must be stored.
    const messages = Array.from({ length: 300 }, (_, i) => ({ message: `flood ${i}`, client_id: `flood-${i}` }));
    const answers = await sendMessages(A, messages, messages.length);
    t.equal(answers.filter((answer) => answer.type === 'error').length, 0, 'no frame refused');
    t.same(
      answers.map((answer) => (answer.type === 'chat.message' ? answer.message.content : answer.type)),
      messages.map((m) => m.message),
      'every frame stored, in the order sent',
    );
  });

  await t.test("an edit after a burst of sends takes effect after them: a socket's frames keep their order", async (t) => {
    const replica = topology.at(0);
    const [a, b] = await registerUsers(topology, 2, 'ord');
    const cid = await createConversation(replica, a!, [b!]);
    const A = await openChat(t, replica, cid, a);
    await A.sync();
    const [first] = await sendMessages(A, [{ message: 'to be edited', client_id: 'first' }]);
    if (first?.type !== 'chat.message') throw new Error(`first send: ${JSON.stringify(first)}`);
    // Sends are stored without waiting for each other's commit; the edit must still follow them.
    for (let i = 0; i < 40; i++) A.send({ type: 'chat_message', message: `burst ${i}`, client_id: `burst-${i}` });
    A.send({ type: 'edit_message', message_id: first.message.id, content: 'edited last' });
    const edited = await A.waitFor(ofType('message.edited'), WAIT_MS);
    const burst = A.conversationEvents().filter((event) => event.type === 'chat.message' && event.message.client_id?.startsWith('burst-'));
    t.equal(burst.length, 40, 'the whole burst was stored before the edit');
    t.ok(burst.every((event) => event.seq < edited.seq), `every send of the burst has a lower seq than the edit (${edited.seq})`);
  });

  await t.test('a client that stops reading is closed with 4008; the replica stays healthy', async (t) => {
    const replica = topology.at(0);
    const [a, b] = await registerUsers(topology, 2, 'slow');
    const cid = await createConversation(replica, a!, [b!]);
    const slow = await openChat(t, replica, cid, b, { lastSeq: 0, label: 'slow' });
    const reader = await openChat(t, replica, cid, a, { lastSeq: 0, label: 'reader' });
    await Promise.all([slow.sync(), reader.sync()]);
    slow.pauseReading();

    const before = await replica.metric('chat_slow_consumer_disconnects_total');
    // 100 000 three-byte characters: about 300 KB per event. Kernel socket buffers on loopback
    // hold a few MB, so the service's own buffer passes its bound after a few dozen.
    const content = '€'.repeat(100_000);
    let sent = 0;
    while ((await replica.metric('chat_slow_consumer_disconnects_total')) === before) {
      if (sent >= 400) throw new Error(`no slow-consumer disconnect after ${sent} messages (~${sent * 0.3} MB)`);
      const batch = await Promise.all(
        Array.from({ length: 5 }, () => replica.http('POST', `/api/conversations/${cid}/messages/`, { token: a!.token, body: { content } })),
      );
      if (batch.some((response) => response.status !== 201)) throw new Error(`send failed: ${batch.map((r) => r.status).join(',')}`);
      sent += batch.length;
    }
    t.pass(`the replica counted a slow consumer after ${sent} messages (~${Math.round(sent * 0.3)} MB)`);

    slow.resumeReading();
    const closed = await slow.closed;
    t.equal(closed.code, 4008, `the slow client is closed with 4008 (${closed.reason})`);
    t.ok(slow.conversationEvents().length < sent, `it had received only part of the traffic (${slow.conversationEvents().length} of ${sent})`);

    await reader.waitForSeq(sent, 60_000);
    t.equal(reader.conversationEvents().length, sent, 'a reading client on the same replica got everything');
    t.equal((await replica.http('GET', '/readyz')).status, 200, 'the replica is ready');
    await eventually('the slow socket to be released', async () => (await replica.metric('chat_open_sockets', { kind: 'chat' })) === 1);

    // A reader that replays the whole history (megabytes, faster than any socket drains) is
    // paced, not taken for a slow consumer.
    const replayer = await openChat(t, replica, cid, a, { lastSeq: 0, label: 'replayer' });
    await replayer.waitForSeq(sent, 60_000);
    t.equal(replayer.conversationEvents().length, sent, 'a client replaying megabytes of history gets all of it');
    t.ok(replayer.isOpen, 'and is not closed as a slow consumer');

    // It resumes where it stopped.
    const resumed = await openChat(t, replica, cid, b, { lastSeq: slow.conversationEvents().at(-1)?.seq ?? 0, label: 'resumed' });
    await resumed.waitForSeq(sent, 60_000);
    const seqs = [...slow.conversationEvents(), ...resumed.conversationEvents()].map((event) => event.seq);
    t.same(seqs, Array.from({ length: sent }, (_, i) => i + 1), 'reconnecting with last_seq fills in the rest, no gap, no duplicate');
  });
}
