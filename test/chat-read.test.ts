/**
 * Read state over sockets, on two replicas sharing PostgreSQL and Redis (API.md version 2,
 * "Read state"): the `read` frame, `read.updated` receipts to every socket of the conversation
 * (the reader's own included) at most once per member per second with the latest marker,
 * none past RECEIPTS_MAX_MEMBERS, and `notification.read` when reading reads the notification.
 */
import t from 'tap';
import { Value } from 'typebox/value';
import { ReadUpdatedEvent } from '../src/contract/events.js';
import { conversationChannel, userChannel } from '../src/redis/names.js';
import { createConversation, openChat, openNotifications, range, registerUsers, sendMessages } from './helpers/chat-api.js';
import { startTopology } from './helpers/replicas.js';
import { type EventOf, ofType, type ServerEvent, type WsClient } from './helpers/ws-client.js';

const RECEIPTS_MAX_MEMBERS = 3;

t.test('read markers over sockets, two replicas', async (t) => {
  const topology = await startTopology(t, { backend: 'redis', replicas: 2, env: { RECEIPTS_MAX_MEMBERS: String(RECEIPTS_MAX_MEMBERS) } });
  const [r0, r1] = [topology.at(0), topology.at(1)];
  const [a, b, c, d] = await registerUsers(topology, 4);

  /** Arrival times of each read.updated a socket gets. */
  const watch = (client: WsClient) => {
    const seen: { event: EventOf<'read.updated'>; at: number }[] = [];
    let from = 0;
    const loop = async (): Promise<void> => {
      for (;;) {
        const event = await client.waitFor(ofType('read.updated'), 60_000, from).catch(() => undefined);
        if (!event) return;
        from = client.events.indexOf(event) + 1;
        seen.push({ event, at: Date.now() });
      }
    };
    void loop();
    return seen;
  };

  await t.test('receipts: to every socket, the reader’s too, one per second with the latest marker', async (t) => {
    const id = await createConversation(r0, a!, [b!]);
    const A0 = await openChat(t, r0, id, a);
    const A1 = await openChat(t, r1, id, a);
    const B1 = await openChat(t, r1, id, b);
    await Promise.all([A0.sync(), A1.sync(), B1.sync()]);
    await topology.waitSubscribers(conversationChannel(id), 2);
    await sendMessages(B1, range(1, 5).map((i) => ({ message: `m${i}`, client_id: `m${i}` })));
    await A0.waitForSeq(5);

    const onB = watch(B1);
    const onA1 = watch(A1);
    A0.send({ type: 'read', seq: 1 });
    const first = await B1.waitFor((e: ServerEvent): e is EventOf<'read.updated'> => e.type === 'read.updated' && e.last_read_seq === 1);
    t.ok(Value.Check(ReadUpdatedEvent, first), 'the event matches the contract');
    t.same(first, { type: 'read.updated', conversation_id: id, user: a!.user.username, user_id: a!.user.id, last_read_seq: 1 });
    await A0.waitFor((e) => e.type === 'read.updated' && e.last_read_seq === 1);
    await A1.waitFor((e) => e.type === 'read.updated' && e.last_read_seq === 1);
    t.pass('the reader’s own sockets (the one that read, and the other replica’s) hear it too');

    // Within the second: three more reads; only the last goes out, at the end of the second.
    for (const seq of [2, 3, 4]) A0.send({ type: 'read', seq });
    await B1.waitFor((e) => e.type === 'read.updated' && e.last_read_seq === 4);
    await A1.waitFor((e) => e.type === 'read.updated' && e.last_read_seq === 4);
    await B1.sync();
    t.same(onB.map((s) => s.event.last_read_seq), [1, 4], 'the others get the first and then the latest, nothing between');
    t.same(onA1.map((s) => s.event.last_read_seq), [1, 4], 'so do the reader’s other devices');
    const gap = onB[1]!.at - onB[0]!.at;
    t.ok(gap >= 900, `the second receipt waited for the interval (${gap} ms)`);

    // A marker that does not move sends nothing; REST reads on the other replica do.
    A0.send({ type: 'read', seq: 2 });
    const rest = await r1.http('POST', `/api/conversations/${id}/read/`, { token: a!.token, body: { seq: 99 } });
    t.same(rest.json, { last_read_seq: 5, unread_count: 0 }, 'clamped to last_seq');
    await B1.waitFor((e) => e.type === 'read.updated' && e.last_read_seq === 5, 5_000);
    await B1.sync();
    t.same(onB.map((s) => s.event.last_read_seq), [1, 4, 5], 'the read backwards sent nothing');

    // Bad frames are answered with an error event; the socket stays open.
    for (const bad of [{ type: 'read', seq: -1 }, { type: 'read', seq: 'x' }, { type: 'read', seq: 1.5 }, { type: 'read' }]) {
      A0.send(bad);
      const error = await A0.waitFor(ofType('error'), undefined, A0.events.length);
      t.match(error, { type: 'error', code: 'invalid_frame', message: /seq/ }, `${JSON.stringify(bad)} → invalid_frame`);
    }
    t.ok(A0.isOpen, 'still open');
  });

  await t.test(`no receipts in conversations of more than RECEIPTS_MAX_MEMBERS (${RECEIPTS_MAX_MEMBERS})`, async (t) => {
    const id = await createConversation(r0, a!, [b!, c!, d!]);
    const A0 = await openChat(t, r0, id, a);
    const B1 = await openChat(t, r1, id, b);
    await Promise.all([A0.sync(), B1.sync()]);
    await topology.waitSubscribers(conversationChannel(id), 2);
    await sendMessages(B1, [{ message: 'big group', client_id: 'big-1' }]);
    await A0.waitForSeq(1);
    A0.send({ type: 'read', seq: 1 });
    // Sent after the read on the same socket: any receipt would have been published before it.
    await sendMessages(A0, [{ message: 'after reading', client_id: 'big-2' }]);
    await B1.waitForSeq(2);
    t.same(B1.events.filter(ofType('read.updated')), [], 'no receipt for four members');
    t.same(A0.events.filter(ofType('read.updated')), [], 'nor to the reader');
    const state = await r1.http('GET', `/api/conversations/${id}/`, { token: b!.token });
    t.match(state.json, { member_count: 4, last_read_seq: 1, unread_count: 1 });
  });

  await t.test('reading to the newest message reads the notification on every device', async (t) => {
    const id = await createConversation(r0, a!, [b!]);
    const N0 = await openNotifications(t, r0, b);
    const N1 = await openNotifications(t, r1, b);
    await topology.waitSubscribers(userChannel(b!.user.id), 2);
    for (const content of ['one', 'two']) {
      t.equal((await r0.http('POST', `/api/conversations/${id}/messages/`, { token: a!.token, body: { content } })).status, 201);
    }
    const isNews = (e: ServerEvent): e is EventOf<'notification'> =>
      e.type === 'notification' && e.message.kind === 'messages.new' && e.message.conversation_id === id && e.message.count === 2;
    const news = await N0.waitFor(isNews);
    const partial = await r1.http('POST', `/api/conversations/${id}/read/`, { token: b!.token, body: { seq: 1 } });
    t.same(partial.json, { last_read_seq: 1, unread_count: 1 });
    const B = await openChat(t, r1, id, b);
    B.send({ type: 'read', seq: 2 });
    const [read0, read1] = await Promise.all([N0, N1].map((client) => client.waitFor(ofType('notification.read'))));
    t.same(read0, { type: 'notification.read', id: news.message.id }, 'the notification socket on the other replica hears of it');
    t.same(read1, { type: 'notification.read', id: news.message.id });
    t.equal(N0.events.filter(ofType('notification.read')).length, 1, 'once, by the read that emptied the conversation');
  });
});
