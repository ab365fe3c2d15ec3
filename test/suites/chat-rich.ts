/**
 * Rich messages over the chat socket (API.md, version 2): replies and reactions as frames,
 * reactions from two replicas at once kept exact, their replay by `last_seq`, a resent
 * `client_id` answered with the original `chat.message`, and a resume too far behind closed
 * with 4409.
 */
import type { Test } from 'tap';
import { createConversation, isAnswerTo, openChat, range, registerUsers, sendMessages } from '../helpers/chat-api.js';
import type { Topology } from '../helpers/replicas.js';
import { type EventOf, ofType, type ServerEvent } from '../helpers/ws-client.js';

type Reaction = { emoji: string; count: number; users: string[] };
const reactionsOf = async (topology: Topology, cid: number, mid: number, token: string): Promise<Reaction[]> => {
  const page = await topology.at(0).http('GET', `/api/conversations/${cid}/messages/`, { token });
  return (page.json as { id: number; reactions: Reaction[] }[]).find((m) => m.id === mid)!.reactions;
};

export async function chatRichSuite(t: Test, topology: Topology, maxReplayEvents: number): Promise<void> {
  const at = (index: number) => topology.at(index);

  await t.test('react and unreact frames, from two replicas at once, replayed by last_seq', async (t) => {
    const users = await registerUsers(topology, 6);
    const [a, ...others] = users;
    const cid = await createConversation(at(0), a!, others);
    const A = await openChat(t, at(0), cid, a);
    const [sent] = await sendMessages(A, [{ message: 'react to this', client_id: 'target' }]);
    const mid = (sent as EventOf<'chat.message'>).message.id;
    const start = (sent as EventOf<'chat.message'>).seq;

    // Every user reacts with the same two emoji at once, half on each replica; then two take one back.
    const sockets = await Promise.all(users.map((user, i) => openChat(t, at(i), cid, user)));
    await Promise.all(sockets.map((socket) => socket.sync()));
    for (const socket of sockets) {
      socket.send({ type: 'react', message_id: mid, emoji: '👍' });
      socket.send({ type: 'react', message_id: mid, emoji: '🎉' });
      socket.send({ type: 'react', message_id: mid, emoji: '👍' }); // a repeat: no event
    }
    const expected = users.length * 2;
    await A.waitForSeq(start + expected);
    sockets[1]!.send({ type: 'unreact', message_id: mid, emoji: '🎉' });
    sockets[2]!.send({ type: 'unreact', message_id: mid, emoji: '🎉' });
    sockets[2]!.send({ type: 'unreact', message_id: mid, emoji: '🎉' }); // nothing left to remove
    await A.waitForSeq(start + expected + 2);
    await A.sync();

    const live = A.conversationEvents().filter((e) => e.seq > start);
    t.equal(live.length, expected + 2, 'one event per change, none for repeats');
    t.same(live.map((e) => e.seq), range(start + 1, start + expected + 2), 'seqs without gap across both replicas');
    t.equal(live.filter((e) => e.type === 'reaction.added').length, expected);
    t.same(live.filter((e) => e.type === 'reaction.removed').map((e) => 'user_id' in e && e.user_id).sort(), [others[0]!.user.id, others[1]!.user.id].sort());
    t.match(live[0], { type: 'reaction.added', conversation_id: cid, message_id: mid, emoji: String, user: String, user_id: Number });

    const reactions = await reactionsOf(topology, cid, mid, a!.token);
    // Every socket sent 👍 first, so the first reaction of all was a 👍.
    t.same(reactions.map((r) => [r.emoji, r.count]), [['👍', 6], ['🎉', 4]], 'counts exact, in the order each emoji first came');
    t.equal(new Set(reactions.find((r) => r.emoji === '🎉')!.users).size, 4);

    // A resume on the other replica replays the same events, byte for byte.
    const resumed = await openChat(t, at(1), cid, others[0], { lastSeq: start - 1 });
    await resumed.waitForSeq(start + expected + 2);
    const replayed = resumed.conversationEvents();
    t.match(replayed[0], { type: 'chat.message', message: { id: mid, reactions: [] } }, 'the replayed chat.message has no reactions: the events rebuild them');
    t.same(replayed.slice(1).map((e) => JSON.stringify(e)), live.map((e) => JSON.stringify(e)), 'reaction events replay as delivered');

    // Bad frames: an error event each, the socket stays open.
    const B = sockets[1]!;
    const before = B.errors().length;
    B.send({ type: 'react', message_id: mid, emoji: 'not one' });
    B.send({ type: 'react', message_id: mid, emoji: '👍👍' });
    B.send({ type: 'react', message_id: 'x', emoji: '👍' });
    B.send({ type: 'react', message_id: 9_000_000_000, emoji: '👍' });
    B.send({ type: 'unreact', message_id: mid });
    const isAnswer = (e: ServerEvent): e is EventOf<'error'> => e.type === 'error' && !e.message.includes('__sync');
    const errors = await B.waitForCount(isAnswer, before + 5);
    t.same(errors.slice(before).map((e) => e.code), ['invalid_frame', 'invalid_frame', 'invalid_frame', 'not_found', 'invalid_frame']);
    t.match(errors[before]!.message, /emoji/);

    // Deleting the message: reacting is a conflict, and its reaction events replay as its deletion.
    A.send({ type: 'delete_message', message_id: mid });
    await A.waitFor((e) => e.type === 'message.deleted' && e.message_id === mid);
    B.send({ type: 'react', message_id: mid, emoji: '👍' });
    t.match(await B.waitFor((e) => e.type === 'error' && e.code === 'conflict'), { message: /deleted/ });
    const late = await openChat(t, at(0), cid, others[2], { lastSeq: start - 1 });
    await A.sync();
    const last = A.conversationEvents().at(-1)!.seq;
    await late.waitForSeq(last);
    t.notOk(late.conversationEvents().some((e) => e.type === 'reaction.added'), 'no reaction of a deleted message replays as added');
    t.ok(B.isOpen);
  });

  await t.test('replies over the socket', async (t) => {
    const [a, b] = await registerUsers(topology, 2);
    const cid = await createConversation(at(0), a!, [b!]);
    const A = await openChat(t, at(0), cid, a);
    const B = await openChat(t, at(1), cid, b);
    // Joined before anything is sent: a socket starts at the seq it joined at, without last_seq.
    await B.sync();
    const [original] = await sendMessages(A, [{ message: 'question?', client_id: 'q' }]);
    const qid = (original as EventOf<'chat.message'>).message.id;
    B.send({ type: 'chat_message', message: 'answer', client_id: 'r', reply_to: qid });
    const answer = await A.waitFor(isAnswerTo('r'));
    t.match(answer, { type: 'chat.message', message: { reply_to: { id: qid, sender: a!.user.username, content: 'question?', is_deleted: false } } });
    B.send({ type: 'chat_message', message: 'bad', client_id: 'bad1', reply_to: -3 });
    B.send({ type: 'chat_message', message: 'bad', client_id: 'bad2', reply_to: 9_000_000_000 });
    // A frame that fails validation is answered without its client_id (it was not read); one the service refuses, with it.
    t.match(await B.waitFor((e) => e.type === 'error' && /reply_to/.test(e.message)), { code: 'invalid_frame' });
    t.match(await B.waitFor(isAnswerTo('bad2')), { type: 'error', code: 'invalid_frame', message: /reply_to/ });
  });

  await t.test('a resent client_id is answered with the original chat.message, to that socket', async (t) => {
    const [a, b] = await registerUsers(topology, 2);
    const cid = await createConversation(at(0), a!, [b!]);
    const A = await openChat(t, at(0), cid, a);
    const B = await openChat(t, at(1), cid, b);
    // Joined before anything is sent: a socket starts at the seq it joined at, without last_seq.
    await B.sync();
    const [first] = await sendMessages(A, [{ message: 'once', client_id: 'retry-me' }]);
    await B.waitForSeq((first as EventOf<'chat.message'>).seq);
    // Another socket of the same user, on the other replica, retries it.
    const again = await openChat(t, at(1), cid, a);
    await again.sync();
    again.send({ type: 'chat_message', message: 'once', client_id: 'retry-me' });
    const answer = await again.waitFor(isAnswerTo('retry-me'));
    t.same(answer, first, 'the same event: same id, same seq');
    await sendMessages(A, [{ message: 'after', client_id: 'after' }]);
    await B.sync();
    t.equal(B.conversationEvents().filter((e) => e.type === 'chat.message' && e.message.client_id === 'retry-me').length, 1, 'the others heard it once');
    t.equal(again.conversationEvents().filter((e) => e.type === 'chat.message' && e.message.client_id === 'retry-me').length, 1);
  });

  await t.test(`?last_seq= more than MAX_REPLAY_EVENTS (${maxReplayEvents}) behind closes with 4409`, async (t) => {
    const [a, b] = await registerUsers(topology, 2);
    const cid = await createConversation(at(0), a!, [b!]);
    const A = await openChat(t, at(0), cid, a);
    const answers = await sendMessages(A, range(1, maxReplayEvents + 2).map((i) => ({ message: `m${i}`, client_id: `m${i}` })));
    const head = (answers.at(-1) as EventOf<'chat.message'>).seq;
    const far = await openChat(t, at(1), cid, b, { lastSeq: head - maxReplayEvents - 1 });
    t.equal((await far.closed).code, 4409, 'one too many: 4409');
    const near = await openChat(t, at(1), cid, b, { lastSeq: head - maxReplayEvents });
    await near.waitForSeq(head);
    t.equal(near.conversationEvents().length, maxReplayEvents, 'exactly MAX_REPLAY_EVENTS behind: replayed');
  });

  await t.test('unknown frame types: the error names the new frames', async (t) => {
    const [a, b] = await registerUsers(topology, 2);
    const cid = await createConversation(at(0), a!, [b!]);
    const A = await openChat(t, at(0), cid, a);
    A.send({ type: 'shout' });
    const error = await A.waitFor(ofType('error'));
    t.match(error, { code: 'unknown_type', message: /react/ });
    t.match(error, { message: /unreact/ });
  });
}
