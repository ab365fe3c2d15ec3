/**
 * Membership on the sockets (API.md version 2): membership events reach every member's chat
 * socket on every replica with their seq and replay by last_seq byte for byte; a removed
 * member's sockets, on every replica, get the `member.removed` event and then close with
 * 4403, and nothing after it, also while a burst of sends races the removal; a socket opened
 * while its user is being removed never stays open; the removed member's notification pushes
 * for the conversation stop.
 */
import type { Test } from 'tap';
import { conversationChannel, userChannel } from '../../src/redis/names.js';
import { assertSeqRun, createConversation, openChat, openNotifications, range, registerUsers, sendMessages, type Session } from '../helpers/chat-api.js';
import type { Replica, Topology } from '../helpers/replicas.js';
import { type ConversationEvent, type EventOf, ofType, type ServerEvent, type WsClient } from '../helpers/ws-client.js';
import { within } from '../helpers/within.js';

const ref = (s: Session) => ({ id: s.user.id, username: s.user.username });
const isRemovalOf = (userId: number) => (event: ServerEvent): event is EventOf<'member.removed'> =>
  event.type === 'member.removed' && event.user.id === userId;

/** Resolves with the socket's close once it has closed; fails the wait past the bound. */
const closeOf = (client: WsClient, what: string) => within(client.closed, `${what} to close`);

export async function chatMembersSuite(t: Test, topology: Topology): Promise<void> {
  const at = (index: number) => topology.at(index);
  const rest = (replica: Replica, session: Session, method: string, path: string, body?: unknown) =>
    replica.http(method, path, { token: session.token, ...(body === undefined ? {} : { body }) });
  const waitRoom = async (cid: number, replicas: Replica[]) =>
    topology.waitSubscribers(conversationChannel(cid), new Set(replicas.map((r) => r.name)).size);

  await t.test('members: events on every replica, the removed member closed with 4403, replay by last_seq', async (t) => {
    const [a, b, c, d] = await registerUsers(topology, 4, 'mem');
    const cid = await createConversation(at(0), a!, [b!, c!]);
    const C0 = await openChat(t, at(0), cid, c, { label: 'C@r0' });
    const C1 = await openChat(t, at(1), cid, c, { label: 'C@r1' });
    const A1 = await openChat(t, at(1), cid, a, { label: 'A@r1' });
    await Promise.all([C0.sync(), C1.sync(), A1.sync()]);
    await waitRoom(cid, [at(0), at(1)]);

    t.equal((await rest(at(0), a!, 'POST', `/api/conversations/${cid}/members/`, { participants: [d!.user.id] })).status, 200);
    t.equal((await rest(at(1), a!, 'PATCH', `/api/conversations/${cid}/members/${b!.user.id}/`, { role: 'admin' })).status, 200);
    t.equal((await rest(at(0), b!, 'PATCH', `/api/conversations/${cid}/`, { title: 'Crew' })).status, 200);
    const expected: ConversationEvent[] = [
      { type: 'member.added', seq: 1, conversation_id: cid, users: [ref(d!)], by: ref(a!) },
      { type: 'member.role', seq: 2, conversation_id: cid, user: ref(b!), role: 'admin' },
      { type: 'conversation.updated', seq: 3, conversation_id: cid, conversation: { id: cid, title: 'Crew' } },
    ];
    for (const client of [C0, C1, A1]) {
      await client.waitForSeq(3);
      t.same(client.conversationEvents(), expected, `${client.label}: the membership events, in seq order`);
    }

    const removed = await rest(at(1), b!, 'DELETE', `/api/conversations/${cid}/members/${c!.user.id}/`);
    t.equal(removed.status, 204, removed.body);
    // The moment the removal committed: 404 on every replica.
    for (const replica of topology.replicas) {
      t.equal((await rest(replica, c!, 'GET', `/api/conversations/${cid}/`)).status, 404, `${replica.name}: the conversation is 404 right after the 204`);
      t.equal((await rest(replica, c!, 'GET', `/api/conversations/${cid}/messages/`)).status, 404, `${replica.name}: its history too`);
    }
    const removal = { type: 'member.removed', seq: 4, conversation_id: cid, user: ref(c!), by: ref(b!) };
    for (const client of [C0, C1]) {
      const closed = await closeOf(client, client.label);
      t.equal(closed.code, 4403, `${client.label}: closed with 4403`);
      t.same(client.conversationEvents().at(-1), removal, `${client.label}: member.removed was the last event`);
    }
    await A1.waitForSeq(4);
    t.same(A1.conversationEvents().at(-1), removal, 'the others hear of it');
    t.ok(A1.isOpen, 'and stay connected');

    const again = await openChat(t, at(0), cid, c, { lastSeq: 0, label: 'C again' });
    t.equal((await closeOf(again, 'C again')).code, 4403, 'the removed member cannot reconnect (4403)');
    t.same(again.conversationEvents(), [], 'and is sent nothing');

    const D = await openChat(t, at(1), cid, d, { lastSeq: 0, label: 'D replay' });
    await D.waitForSeq(4);
    t.same(D.raw.slice(0, 4), A1.raw.filter((_, i) => 'seq' in A1.events[i]!), 'a replay by last_seq is byte for byte what was delivered live');
    const resumed = await openChat(t, at(0), cid, a, { lastSeq: 2, label: 'A resumes at 2' });
    await resumed.waitForSeq(4);
    t.same(resumed.conversationEvents().map((e) => e.seq), [3, 4], 'resuming after seq 2 replays 3 and 4');
  });

  await t.test('members: the race — a removal amid a burst of sends on two replicas', async (t) => {
    const [a, b, c] = await registerUsers(topology, 3, 'race');
    const cid = await createConversation(at(0), a!, [b!, c!]);
    const C0 = await openChat(t, at(0), cid, c, { lastSeq: 0, label: 'removed@r0' });
    const C1 = await openChat(t, at(1), cid, c, { lastSeq: 0, label: 'removed@r1' });
    const A0 = await openChat(t, at(0), cid, a, { lastSeq: 0, label: 'A sender@r0' });
    const B1 = await openChat(t, at(1), cid, b, { lastSeq: 0, label: 'B sender@r1' });
    const A1 = await openChat(t, at(1), cid, a, { lastSeq: 0, label: 'A observer@r1' });
    const B0 = await openChat(t, at(0), cid, b, { lastSeq: 0, label: 'B observer@r0' });
    const remaining = [A0, B1, A1, B0];
    await Promise.all([C0, C1, ...remaining].map((client) => client.sync()));
    await waitRoom(cid, [at(0), at(1)]);

    const perSender = 150;
    const bursts = Promise.all([
      sendMessages(A0, range(0, perSender - 1).map((i) => ({ message: `a ${i}`, client_id: `a-${i}` }))),
      sendMessages(B1, range(0, perSender - 1).map((i) => ({ message: `b ${i}`, client_id: `b-${i}` }))),
    ]);
    // Mid-burst: the removal commits between sends of both replicas.
    await A0.waitForSeq(60, 30_000);
    const removal = await rest(at(1), a!, 'DELETE', `/api/conversations/${cid}/members/${c!.user.id}/`);
    t.equal(removal.status, 204, removal.body);
    const afterRemoval = await Promise.all(topology.replicas.map((replica) => rest(replica, c!, 'GET', `/api/conversations/${cid}/`)));
    t.same(afterRemoval.map((r) => r.status), topology.replicas.map(() => 404), 'REST 404 on every replica right after the 204');
    const answers = (await bursts).flat();
    t.same(answers.filter((answer) => answer.type !== 'chat.message'), [], 'every send stored');

    const total = perSender * 2 + 1;
    await Promise.all(remaining.map((client) => client.waitForSeq(total, 60_000)));
    const removedAt = A1.conversationEvents().find(isRemovalOf(c!.user.id))?.seq;
    t.ok(removedAt !== undefined && removedAt > 1 && removedAt < total, `the removal landed mid-burst (seq ${removedAt} of ${total})`);
    for (const client of remaining) {
      assertSeqRun(t, client.conversationEvents(), 1, total, client.label);
      t.same(client.errors(), [], `${client.label}: no errors`);
    }
    for (const client of [C0, C1]) {
      t.equal((await closeOf(client, client.label)).code, 4403, `${client.label}: closed with 4403`);
      const seen = client.conversationEvents();
      t.same(seen.at(-1), { type: 'member.removed', seq: removedAt, conversation_id: cid, user: ref(c!), by: ref(a!) }, `${client.label}: member.removed is its last event`);
      t.same(seen.filter((event) => event.seq > removedAt!), [], `${client.label}: nothing with a seq above the removal's`);
      assertSeqRun(t, seen, 1, removedAt!, client.label);
      t.same(client.events.slice(client.events.indexOf(seen.at(-1)!) + 1).filter((e) => e.type !== 'error'), [], `${client.label}: and no live-only event after it`);
    }
  });

  await t.test('members: a socket opened while its user is removed never stays open', async (t) => {
    const [a, b, c] = await registerUsers(topology, 3, 'join');
    const cid = await createConversation(at(0), a!, [b!, c!]);
    const A = await openChat(t, at(0), cid, a, { label: 'A' });
    await A.sync();
    for (let round = 0; round < 6; round++) {
      const replica = at(round);
      // The socket's join (membership and seq in one read) races the removal's commit.
      const [client, removal] = await Promise.all([
        openChat(t, replica, cid, c, { label: `C round ${round}@${replica.name}` }),
        rest(at(round + 1), a!, 'DELETE', `/api/conversations/${cid}/members/${c!.user.id}/`),
      ]);
      t.equal(removal.status, 204);
      const closed = await closeOf(client, client.label);
      t.equal(closed.code, 4403, `round ${round}: closed with 4403`);
      const seen = client.conversationEvents();
      if (seen.length > 0) t.match(seen.at(-1), { type: 'member.removed', user: ref(c!) }, `round ${round}: its last event is the removal`);
      t.equal((await rest(at(round), a!, 'POST', `/api/conversations/${cid}/members/`, { participants: [c!.user.id] })).status, 200, 'added back');
    }
    // Back in: a replay from the start passes the earlier removals without closing.
    const back = await openChat(t, at(1), cid, c, { lastSeq: 0, label: 'C back in' });
    const last = (await rest(at(0), a!, 'POST', `/api/conversations/${cid}/messages/`, { content: 'welcome back' })).json.seq as number;
    await back.waitForSeq(last);
    assertSeqRun(t, back.conversationEvents(), 1, last, 'C back in');
    t.equal(back.conversationEvents().filter(isRemovalOf(c!.user.id)).length, 6, 'its six earlier removals replayed');
    t.ok(back.isOpen, 'and the socket stays open');
  });

  await t.test('members: the removed member\'s notification pushes for the conversation stop', async (t) => {
    const [a, b, c] = await registerUsers(topology, 3, 'push');
    const cid = await createConversation(at(0), a!, [b!, c!]);
    const Bn = await openNotifications(t, at(1), b);
    const Cn = await openNotifications(t, at(1), c);
    await topology.waitSubscribers(userChannel(b!.user.id), 1);
    await topology.waitSubscribers(userChannel(c!.user.id), 1);
    const isNews = (event: ServerEvent): event is EventOf<'notification'> =>
      event.type === 'notification' && event.message.kind === 'messages.new' && event.message.conversation_id === cid;
    t.equal((await rest(at(0), a!, 'POST', `/api/conversations/${cid}/messages/`, { content: 'before' })).status, 201);
    await Promise.all([Bn.waitFor(isNews), Cn.waitFor(isNews)]);
    t.pass('both members are notified while both are in');

    t.equal((await rest(at(0), a!, 'DELETE', `/api/conversations/${cid}/members/${c!.user.id}/`)).status, 204);
    const pushedBefore = Cn.events.filter(isNews).length;
    const after = await rest(at(0), a!, 'POST', `/api/conversations/${cid}/messages/`, { content: 'after' });
    t.equal(after.status, 201);
    await Bn.waitFor((event) => isNews(event) && event.message.message_id === after.json.id);
    // A later push to C from the same replica: everything published before it has arrived.
    const marker = await createConversation(at(0), a!, [c!]);
    await Cn.waitFor((event) => event.type === 'notification' && event.message.kind === 'conversation.added' && event.message.conversation_id === marker);
    t.equal(Cn.events.filter(isNews).length, pushedBefore, 'no "new messages" push for the conversation after the removal');
    const listed = await rest(at(1), c!, 'GET', '/api/notifications/?unread=true');
    t.notOk(
      listed.json.some((n: { conversation_id: number; message_id: number | null }) => n.conversation_id === cid && n.message_id === after.json.id),
      'nor a row about the message sent after it',
    );
    t.ok(Bn.events.some(ofType('notification')), 'the remaining member keeps theirs');
  });
}
