/**
 * The client library's rich messages (issue 17) against real replica processes: two replicas
 * on Redis sharing PostgreSQL, alice on one and bob on the other. Replies over REST and the
 * socket, reactions over REST and frames with each side's message store following the
 * events, edit history, search along the Link cursor, upload progress and cancel (Node's
 * fetch path), and the reload after a 4409 (a resume more than MAX_REPLAY_EVENTS behind).
 */
import t, { type Test } from 'tap';
import { ApiError, applyReaction, isAbortError, type ChatReset, type LiveConversation, type MessageView } from '@chat-service/client';
import { chatEventValidator, invalidFrames, newClientUser, poll, untilEmitted, WAIT_MS, Wire, type ClientUser } from './helpers/client-harness.js';
import { rejection } from './helpers/client-service.js';
import { type Replica, startTopology } from './helpers/replicas.js';

const QUICK = { initialMs: 20, maxMs: 200, factor: 2, random: () => 1 };
/** Small, so a test can fall that far behind quickly. */
const MAX_REPLAY_EVENTS = 5;

const newUser = (replica: Replica): Promise<ClientUser> => newClientUser(replica.url, { backoff: QUICK });

async function openLive(t: Test, user: ClientUser, conversationId: number): Promise<LiveConversation> {
  const live = await user.client.openConversation(conversationId);
  t.teardown(() => live.close());
  await until(live, 'the socket to open', () => live.socket.state === 'open');
  return live;
}

/** Resolves once `check()` holds, re-checked on every change of the live conversation; bounded. */
const until = (live: LiveConversation, what: string, check: () => boolean, timeoutMs = WAIT_MS): Promise<void> =>
  untilEmitted(
    what,
    (wake) => [live.on('change', wake), live.on('reset', wake), live.socket.on('state', wake)],
    check,
    () => `conversation ${live.id}: socket ${live.socket.state}, seq ${live.socket.lastSeq}`,
    timeoutMs,
  );

const reactionsOf = (message: MessageView | undefined) => (message?.reactions ?? []).map((r) => ({ emoji: r.emoji, count: r.count, users: [...r.users].sort() }));

t.test('applyReaction: an event a page already counted is not counted twice', async (t) => {
  const event = (type: 'reaction.added' | 'reaction.removed', user: string) => ({ type, seq: 9, conversation_id: 1, message_id: 1, emoji: '👍', user, user_id: 1 });
  const counted = [{ emoji: '👍', count: 2, users: ['ann', 'ben'] }];
  t.same(applyReaction(counted, event('reaction.added', 'ann')), counted, 'added by someone listed: unchanged');
  t.same(applyReaction(counted, event('reaction.added', 'cat')), [{ emoji: '👍', count: 3, users: ['ann', 'ben', 'cat'] }], 'a new reactor counted and listed');
  t.same(applyReaction(counted, event('reaction.removed', 'cat')), counted, 'removed by someone not listed while all are: unchanged');
  t.same(applyReaction(counted, event('reaction.removed', 'ann')), [{ emoji: '👍', count: 1, users: ['ben'] }], 'a listed reactor removed');
  t.same(applyReaction([{ emoji: '👍', count: 1, users: ['ann'] }], event('reaction.removed', 'ann')), [], 'the last one: the emoji goes');
  const ten = Array.from({ length: 10 }, (_, i) => `u${i}`);
  t.same(applyReaction([{ emoji: '👍', count: 12, users: ten }], event('reaction.added', 'zed')), [{ emoji: '👍', count: 13, users: ten }], 'past ten: counted, not listed');
  t.same(applyReaction([{ emoji: '👍', count: 12, users: ten }], event('reaction.removed', 'zed')), [{ emoji: '👍', count: 11, users: ten }], 'an unlisted one of many: uncounted');
});

t.test('rich messages through the client library, two replicas', async (t) => {
  const topology = await startTopology(t, { backend: 'redis', replicas: 2, env: { MAX_REPLAY_EVENTS: String(MAX_REPLAY_EVENTS) } });
  const [r0, r1] = topology.replicas as [Replica, Replica];

  await t.test('replies over REST and the socket, with the preview following edits and deletes', async (t) => {
    const alice = await newUser(r0);
    const bob = await newUser(r1);
    const group = await alice.client.createGroup('Replies', [bob.id]);
    const B = await openLive(t, bob, group.id);
    const original = await alice.client.sendMessage(group.id, 'the original');
    const restReply = await bob.client.sendMessage(group.id, 'a REST reply', { replyTo: original.id });
    t.same(restReply.reply_to, { id: original.id, sender: alice.username, content: 'the original', is_deleted: false }, 'REST: the preview');
    const socketReply = await B.socket.send('a socket reply', { replyTo: original.id });
    t.match(socketReply.reply_to, { id: original.id, content: 'the original' }, 'socket: the preview');
    const other = await alice.client.createGroup('Elsewhere', [bob.id]);
    const wrong = await rejection(bob.client.sendMessage(group.id, 'reply to another conversation', { replyTo: (await alice.client.sendMessage(other.id, 'x')).id }));
    t.ok(wrong instanceof ApiError && wrong.statusCode === 400, 'a reply to a message of another conversation: 400');

    await until(B, 'both replies in the store', () => B.messages.get(socketReply.id) !== undefined && B.messages.get(restReply.id) !== undefined);
    await alice.client.editMessage(group.id, original.id, 'the original, edited');
    await until(B, 'the previews to follow the edit', () => B.messages.get(socketReply.id)?.reply_to?.content === 'the original, edited');
    t.equal(B.messages.get(restReply.id)?.reply_to?.content, 'the original, edited', 'every reply to it');
    await alice.client.deleteMessage(group.id, original.id);
    await until(B, 'the previews to lose the text', () => B.messages.get(socketReply.id)?.reply_to?.is_deleted === true);
    t.same(B.messages.get(socketReply.id)?.reply_to, { id: original.id, sender: alice.username, content: '', is_deleted: true }, 'a deleted original shows no text');
    const [reread] = await bob.client.listMessages(group.id, { after: original.id, limit: 1 });
    t.same(reread?.reply_to, { id: original.id, sender: alice.username, content: '', is_deleted: true }, 'as the service serves it');
  });

  await t.test('reactions over REST and frames; both stores follow the events across replicas', async (t) => {
    const alice = await newUser(r0);
    const bob = await newUser(r1);
    const group = await alice.client.createGroup('Reactions', [bob.id]);
    const A = await openLive(t, alice, group.id);
    const B = await openLive(t, bob, group.id);
    const message = await A.socket.send('react to me');
    await until(B, 'the message in bob’s store', () => B.messages.get(message.id) !== undefined);

    const answered = await alice.client.react(group.id, message.id, '👍');
    t.same(reactionsOf(answered), [{ emoji: '👍', count: 1, users: [alice.username] }], 'PUT answers the message with its reactions');
    t.same(reactionsOf(await alice.client.react(group.id, message.id, '👍')), [{ emoji: '👍', count: 1, users: [alice.username] }], 'PUT again: idempotent');
    B.socket.react(message.id, '👍');
    B.socket.react(message.id, '❤️');
    const expected = [
      { emoji: '👍', count: 2, users: [alice.username, bob.username].sort() },
      { emoji: '❤️', count: 1, users: [bob.username] },
    ];
    await until(A, 'alice’s store to show both', () => JSON.stringify(reactionsOf(A.messages.get(message.id))) === JSON.stringify(expected));
    await until(B, 'bob’s store to show both', () => JSON.stringify(reactionsOf(B.messages.get(message.id))) === JSON.stringify(expected));
    t.equal(A.messages.reactedByMe(message.id, '👍'), true, 'alice reacted with 👍');
    t.equal(A.messages.reactedByMe(message.id, '❤️'), false, 'not with ❤️');
    t.equal(B.messages.reactedByMe(message.id, '❤️'), true, 'bob did');

    B.socket.unreact(message.id, '❤️');
    await alice.client.unreact(group.id, message.id, '👍');
    await alice.client.unreact(group.id, message.id, '👍');
    const after = [{ emoji: '👍', count: 1, users: [bob.username] }];
    await until(A, 'alice’s store after the unreacts', () => JSON.stringify(reactionsOf(A.messages.get(message.id))) === JSON.stringify(after));
    await until(B, 'bob’s store after the unreacts', () => JSON.stringify(reactionsOf(B.messages.get(message.id))) === JSON.stringify(after));
    t.equal(A.messages.reactedByMe(message.id, '👍'), false, 'alice no longer');
    t.same(reactionsOf((await bob.client.listMessages(group.id)).find((m) => m.id === message.id)), after, 'the service agrees');

    const bad = await rejection(alice.client.react(group.id, message.id, 'ab'));
    t.ok(bad instanceof ApiError && bad.statusCode === 400, 'not an emoji: 400');
    B.socket.react(message.id, 'nope');
    await new Promise<void>((resolve) => {
      const off = B.socket.on('error', (event) => {
        t.equal(event.code, 'invalid_frame', `a react frame with text: error ${event.code}`);
        off();
        resolve();
      });
    });
    t.same(invalidFrames(bob.wire.frames, chatEventValidator), [], 'every frame bob got validates');
  });

  await t.test('edit history', async (t) => {
    const alice = await newUser(r0);
    const bob = await newUser(r1);
    const group = await alice.client.createGroup('History', [bob.id]);
    const message = await alice.client.sendMessage(group.id, 'v1');
    t.same(await bob.client.messageHistory(group.id, message.id), [], 'not edited: no earlier versions');
    await alice.client.editMessage(group.id, message.id, 'v2');
    await alice.client.editMessage(group.id, message.id, 'v3');
    const versions = await bob.client.messageHistory(group.id, message.id);
    t.same(versions.map((v) => v.content), ['v1', 'v2'], 'earlier versions, oldest first');
    t.ok(versions.every((v) => !Number.isNaN(Date.parse(v.edited_at))), 'each with its time');
    await alice.client.deleteMessage(group.id, message.id);
    t.same(await bob.client.messageHistory(group.id, message.id), [], 'none once deleted');
  });

  await t.test('search along the Link cursor', async (t) => {
    const alice = await newUser(r0);
    const bob = await newUser(r1);
    const group = await alice.client.createGroup('Search', [bob.id]);
    const tag = `zq${Math.random().toString(36).slice(2, 8)}`;
    const sent: number[] = [];
    for (let i = 0; i < 5; i++) sent.push((await alice.client.sendMessage(group.id, `needle ${tag} number ${i}`)).id);
    await alice.client.sendMessage(group.id, 'no match here');
    // Words are indexed a moment after the send (search-indexer.ts): wait until the newest is.
    await poll('the five matches indexed', async () => (await bob.client.searchMessagesPage({ q: tag })).items.length === 5);
    const first = await bob.client.searchMessagesPage({ q: tag, limit: 2 });
    t.ok(first.next, `a next page (${JSON.stringify(first.next)})`);
    const walked: number[] = [];
    for await (const message of bob.client.searchMessages(tag, { limit: 2 })) walked.push(message.id);
    t.same(walked, [...sent].reverse(), 'every match once, newest first, over pages of 2');
    const scoped: number[] = [];
    for await (const message of bob.client.searchMessages(`needle ${tag.slice(0, 4)}`, { conversation_id: group.id })) scoped.push(message.id);
    t.same(scoped, [...sent].reverse(), 'in one conversation, the last word as a prefix');
    const outsider = await newUser(r0);
    const none: number[] = [];
    for await (const message of outsider.client.searchMessages(tag)) none.push(message.id);
    t.same(none, [], 'nobody else finds them');
  });

  await t.test('upload progress, and an aborted upload keeps nothing', async (t) => {
    const alice = await newUser(r0);
    const group = await alice.client.createGroup('Uploads', [(await newUser(r1)).id]);
    const message = await alice.client.sendMessage(group.id, 'files');
    const size = 3 * 1024 * 1024;
    const file = new Blob([new Uint8Array(size).fill(7)], { type: 'application/octet-stream' });
    const progress: Array<{ loaded: number; total: number }> = [];
    const attachment = await alice.client.uploadAttachment(group.id, message.id, file, 'big.bin', { onProgress: (p) => progress.push(p) });
    t.match(attachment, { filename: 'big.bin', size }, 'stored whole');
    t.ok(progress.length > 2, `several progress calls (${progress.length})`);
    t.ok(progress.every((p, i) => i === 0 || p.loaded > progress[i - 1]!.loaded), 'loaded grows');
    const total = progress[0]!.total;
    t.ok(progress.every((p) => p.total === total) && total > size, `one total, the whole body (${total} > ${size})`);
    t.equal(progress.at(-1)!.loaded, total, 'the last call: everything sent');

    const controller = new AbortController();
    const big = new Blob([new Uint8Array(16 * 1024 * 1024).fill(9)]);
    let calls = 0;
    const aborted = await rejection(
      alice.client.uploadAttachment(group.id, message.id, big, 'cancelled.bin', {
        signal: controller.signal,
        onProgress: ({ loaded, total: whole }) => {
          calls += 1;
          if (loaded > 0 && loaded < whole) controller.abort();
        },
      }),
    );
    t.ok(isAbortError(aborted), `the upload rejects with an AbortError (${String(aborted)})`);
    t.ok(calls >= 1, 'it had started');
    const again = await rejection(alice.client.uploadAttachment(group.id, message.id, big, 'x.bin', { signal: controller.signal }));
    t.ok(isAbortError(again), 'an already aborted signal: rejected at once');
    const small = await alice.client.uploadAttachment(group.id, message.id, new Blob(['after']), 'after.txt');
    t.same((await alice.client.listAttachments(group.id, message.id)).map((a) => a.id), [attachment.id, small.id], 'no attachment from the aborted upload');
  });

  await t.test('4409: fallen too far behind, the library reloads the newest page and resumes with no gap', async (t) => {
    // The transport under the library: a flag refuses ticket requests (the network is down),
    // and the sockets can be dropped as a network would drop them.
    const wire = new Wire();
    let offline = false;
    const sockets: WebSocket[] = [];
    const Recording = wire.WebSocket;
    const alice = await newClientUser(r0.url, {
      backoff: QUICK,
      WebSocket: class extends Recording {
        constructor(url: string) {
          super(url);
          sockets.push(this);
        }
      },
      fetch: (input, init) => (offline && String(input).includes('/ws-ticket/') ? Promise.reject(new TypeError('offline')) : wire.fetch(input, init)),
    });
    const bob = await newUser(r1);
    const group = await alice.client.createGroup('Behind', [bob.id]);
    const A = await openLive(t, alice, group.id);
    const first = await A.socket.send('before the break');
    const resets: ChatReset[] = [];
    A.on('reset', (reset) => resets.push(reset));

    offline = true;
    for (const socket of sockets) socket.close(4000, 'network gone');
    await until(A, 'the socket to be down', () => A.socket.state === 'waiting');
    const missed: MessageView[] = [];
    for (let i = 0; i < MAX_REPLAY_EVENTS + 3; i++) missed.push(await bob.client.sendMessage(group.id, `missed ${i}`));
    offline = false;
    A.socket.reconnectNow();
    await until(A, 'the reload', () => resets.length === 1 && A.socket.state === 'open');
    const reset = resets[0]!;
    t.equal(reset.lastSeq, missed.at(-1)!.seq, 'resumed from the conversation’s last_seq');
    t.same(reset.messages.map((m) => m.id).slice(-missed.length - 1), [first.id, ...missed.map((m) => m.id)], 'the newest page holds what was missed');
    t.same(A.messages.list().map((m) => m.id).slice(-missed.length - 1), [first.id, ...missed.map((m) => m.id)], 'the store was replaced by it');
    const seqs = wire.attempts.map((attempt) => attempt.url.searchParams.get('last_seq'));
    t.same(seqs.slice(-2), [String(first.seq), String(reset.lastSeq)], 'the old resume point was refused, the new one taken');

    const after = await bob.client.sendMessage(group.id, 'after the reload');
    await until(A, 'the next message live', () => A.messages.get(after.id) !== undefined);
    t.equal(after.seq, reset.lastSeq + 1, 'the next event follows with no gap');
    t.equal(A.socket.lastSeq, after.seq);
    t.equal(A.state.lastSeq, after.seq, 'the state follows');
    t.equal(A.state.unreadCount, missed.length + 1, 'the reloaded unread count, plus the new one');
    const mine = await A.socket.send('and mine');
    t.equal(mine.seq, after.seq + 1, 'sends work after the reload');
  });
});
