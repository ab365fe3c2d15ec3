/**
 * The client library's reconnects against real replica processes: two replicas of the service
 * on Redis (sharing PostgreSQL), and a TCP proxy in front standing in for the load balancer,
 * so a client keeps one base URL while the replica it is on is SIGKILLed. The client runs
 * with the platform's WebSocket, only instrumented (`Wire`) to see which URLs it asked for
 * and when; the proxy counts the connection attempts that reach it.
 */
import t, { type Test } from 'tap';
import { userChannel } from '../src/redis/names.js';
import { ChatClient, type ChatClientOptions, type MessageView } from '@chat-service/client';
import { randomName } from './helpers/api.js';
import { bounded, ChatRecorder, chatEventValidator, invalidFrames, NotificationRecorder, notificationEventValidator, poll, seqProblem, Wire, newClientUser, type ClientUser } from './helpers/client-harness.js';
import { type Replica, startTopology, type Topology } from './helpers/replicas.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';

const PASSWORD = 'correct horse battery';

type User = ClientUser;

/** A registered user whose client talks to `baseUrl`. */
const newUser = (baseUrl: string, options: Partial<ChatClientOptions> = {}): Promise<User> => newClientUser(baseUrl, options);

function openChat(t: Test, user: User, conversationId: number, lastSeq: number, label = user.username): ChatRecorder {
  const socket = user.client.chat(conversationId, { lastSeq });
  t.teardown(() => socket.close());
  return new ChatRecorder(socket, `${label}/chat/${conversationId}`);
}

/** Every message of a conversation through REST paging. */
async function history(client: ChatClient, conversationId: number): Promise<MessageView[]> {
  const pages: MessageView[][] = [];
  let before: number | undefined;
  for (;;) {
    const page = await client.listMessages(conversationId, { limit: 200, ...(before !== undefined ? { before } : {}) });
    pages.unshift(page);
    if (page.length < 200) return pages.flat();
    before = page[0]!.id;
  }
}

/** Alice (through `baseUrl`) and bob (straight to `bobReplica`) in a new conversation. */
async function pair(baseUrl: string, bobReplica: Replica, options: Partial<ChatClientOptions>) {
  const alice = await newUser(baseUrl, options);
  const bob = await newUser(bobReplica.url);
  const conversation = await bob.client.createConversation([alice.id]);
  return { alice, bob, conversation };
}

t.test('two replicas on Redis behind a TCP proxy', async (t) => {
  const topology: Topology = await startTopology(t, { backend: 'redis', replicas: 2 });
  const [r0, r1] = topology.replicas as [Replica, Replica];

  await t.test('service unreachable: attempts back off (spaced ≥ the delay, growing), then resume with last_seq', async (t) => {
    const proxy = await startTcpProxy(t, [r0.port]);
    const backoff = { initialMs: 40, factor: 2, maxMs: 640, random: () => 1 };
    const { alice, bob, conversation } = await pair(proxy.url, r1, { backoff });
    const A = openChat(t, alice, conversation.id, conversation.last_seq, 'alice');
    await A.reach('open');
    for (let i = 1; i <= 2; i++) await bob.client.sendMessage(conversation.id, `before ${i}`);
    await A.reachSeq(2);

    const attemptsBefore = alice.wire.attempts.length;
    const triesBefore = alice.wire.ticketRequests.length;
    const acceptedBefore = proxy.accepted();
    const statesBefore = A.states.length;
    await r0.kill('SIGKILL');
    await A.reach('waiting', statesBefore);
    const waitingAt = A.states[A.stateIndex('waiting', statesBefore)]!.at;
    // Stored on the surviving replica while alice cannot connect anywhere.
    for (let i = 3; i <= 5; i++) await bob.client.sendMessage(conversation.id, `while away ${i}`);

    const failed = 5;
    // Each try asks for a socket ticket first; with the service gone, that request is the try.
    await A.until(`${failed} attempts after the kill`, () => alice.wire.ticketRequests.length >= triesBefore + failed);
    const attempts = alice.wire.ticketRequests.slice(triesBefore, triesBefore + failed).map((at) => ({ at }));
    // random() = 1: the delay before retry k (0-based) is exactly min(640, 40·2^k); an attempt
    // starts no earlier than that after the previous one ended (timers never fire early).
    const expected = [40, 80, 160, 320, 640];
    const gaps = attempts.map((attempt, k) => attempt.at - (k === 0 ? waitingAt : attempts[k - 1]!.at));
    t.comment(`gaps between attempts (ms): ${gaps.map((gap) => gap.toFixed(1)).join(', ')}`);
    // Node starts a timer from the event loop's cached millisecond clock, which can trail
    // performance.now() by the time already spent in the current loop turn: allow a few ms.
    gaps.forEach((gap, k) => t.ok(gap >= expected[k]! - 5, `attempt ${k + 1} starts ≥ ${expected[k]} ms after the previous (${gap.toFixed(1)} ms)`));
    t.same(
      alice.wire.lastSeqs().slice(attemptsBefore),
      Array(alice.wire.attempts.length - attemptsBefore).fill(2),
      'every attempt asks to resume after the last delivered seq (last_seq=2)',
    );
    const reached = proxy.routes().slice(acceptedBefore);
    t.ok(reached.length >= failed - 1, `the attempts reached the proxy (${reached.length} accepted)`);
    t.ok(reached.every((port) => port === undefined), 'and found no replica there');
    t.equal(A.socket.state === 'open', false, 'not open while the service is down');

    await r0.restart();
    await A.reach('open', statesBefore);
    await A.reachSeq(5);
    t.notOk(seqProblem(A.seqs(), 1, 5), 'the events stored while it was away are delivered, 1..5 each once in order');
    t.equal(proxy.routes().at(-1), r0.port, 'reconnected through the proxy to the restarted replica');
    t.notOk(A.states.slice(statesBefore).some((s) => s.state === 'closed'), 'never closed for good');
    t.same(A.events.slice(2).map((e) => e.type === 'chat.message' && e.message.content), ['while away 3', 'while away 4', 'while away 5']);
    t.same(invalidFrames(alice.wire.frames, chatEventValidator), [], 'every frame validates');
  });

  await t.test('a send made while disconnected is delivered after the reconnect, stored once', async (t) => {
    const proxy = await startTcpProxy(t, [r0.port]);
    const { alice, bob, conversation } = await pair(proxy.url, r1, { backoff: { initialMs: 50, maxMs: 400 } });
    const A = openChat(t, alice, conversation.id, conversation.last_seq, 'alice');
    await A.reach('open');
    await bob.client.sendMessage(conversation.id, 'hi alice');
    await A.reachSeq(1);

    const statesBefore = A.states.length;
    await r0.kill('SIGKILL');
    await A.reach('waiting', statesBefore);
    let settled = false;
    const sending = A.socket.send('written while offline', 'offline-1');
    void sending.then(
      () => (settled = true),
      () => (settled = true),
    );
    await bob.client.sendMessage(conversation.id, 'bob, meanwhile');
    t.notOk(settled, 'not settled while disconnected');
    t.same(alice.wire.sentOn('offline-1'), [], 'nothing sent while disconnected');
    await r0.restart();
    const message = await bounded(sending, 'the send made while offline', 30_000);
    t.match(message, { client_id: 'offline-1', content: 'written while offline', sender: alice.username, seq: 3 }, 'send() resolves after the reconnect');
    await A.reachSeq(3);
    t.same(alice.wire.sentOn('offline-1'), [alice.wire.attempts.length - 1], 'sent once, on the connection that opened');
    const stored = await history(bob.client, conversation.id);
    t.same(stored.filter((m) => m.client_id === 'offline-1'), [message], 'stored exactly once, as resolved');
    t.equal(stored.length, 3);
    t.notOk(seqProblem(A.seqs(), 1, 3), "bob's message from the outage, then alice's own: 1..3");
    t.same(A.events.map((e) => e.type === 'chat.message' && e.message.id), stored.map((m) => m.id));
  });

  await t.test('NotificationSocket: resync after a reconnect, and notifications flow again', async (t) => {
    const proxy = await startTcpProxy(t, [r0.port]);
    const { alice, bob, conversation } = await pair(proxy.url, r1, { backoff: { initialMs: 50, maxMs: 400 } });
    const socket = alice.client.notifications();
    t.teardown(() => socket.close());
    const N = new NotificationRecorder(socket, 'alice/notifications');
    await N.reach('open');
    await topology.waitSubscribers(userChannel(alice.id), 1);
    const first = await bob.client.sendMessage(conversation.id, 'ping');
    await N.until('told of the first message', () => N.notifications.some((n) => n.message_id === first.id));
    t.equal(N.resyncs, 0, 'no resync on the first connection');

    const statesBefore = N.states.length;
    await r0.kill('SIGKILL');
    await N.reach('waiting', statesBefore);
    // Missed while away: the socket cannot replay it, hence `resync`.
    const missed = await bob.client.sendMessage(conversation.id, 'while you were away');
    await r0.restart();
    await N.until('resynced', () => N.resyncs === 1);
    t.equal(N.socket.state, 'open', 'resync is emitted once open again');
    await poll('listNotifications (what a resync handler calls) to have what was missed', async () =>
      (await alice.client.listNotifications()).some((n) => n.conversation_id === conversation.id && n.message_id !== null && n.message_id >= missed.id),
    );
    t.pass('listNotifications (what a resync handler calls) has what was missed');

    await topology.waitSubscribers(userChannel(alice.id), 1);
    const after = await bob.client.sendMessage(conversation.id, 'back again');
    await N.until('told of the message after the reconnect', () => N.notifications.some((n) => n.message_id === after.id));
    t.equal(N.resyncs, 1, 'one resync per reconnect');
    t.same(invalidFrames(alice.wire.frames, notificationEventValidator), [], 'every frame validates');
  });

  await t.test("the client's replica SIGKILLed mid-traffic: waiting → open, every event once, in order, no gap", async (t) => {
    const proxy = await startTcpProxy(t, [r0.port, r1.port]);
    const { alice, bob, conversation } = await pair(proxy.url, r1, { backoff: { initialMs: 50, maxMs: 500 } });
    const A = openChat(t, alice, conversation.id, conversation.last_seq, 'alice');
    await A.reach('open');
    t.equal(proxy.routes()[0], r0.port, "alice's socket is on r0");

    let stopping = false;
    const aliceSent: MessageView[] = [];
    const unexpected: unknown[] = [];
    // Bob over REST on r1, alice over her socket: both keep sending through the kill.
    const bobLoop = (async () => {
      for (let i = 0; !stopping; i++) await bob.client.sendMessage(conversation.id, `bob ${i}`, `bob-${i}`);
    })();
    const aliceLoop = (async () => {
      for (let i = 0; !stopping; i++) {
        try {
          aliceSent.push(await bounded(A.socket.send(`alice ${i}`, `alice-${i}`), `alice-${i}`, 30_000));
        } catch (error) {
          unexpected.push(error);
          return;
        }
      }
    })();
    const loops = Promise.all([bobLoop, aliceLoop]);
    loops.catch(() => {});

    await A.reachSeq(30);
    const statesBefore = A.states.length;
    await r0.kill('SIGKILL');
    await A.reach('waiting', statesBefore);
    const waiting = A.stateIndex('waiting', statesBefore);
    const killedAt = A.states[waiting]!.seq!;
    t.pass(`r0 SIGKILLed; the socket dropped at seq ${killedAt}`);
    await A.reach('open', waiting);
    await A.reachSeq(killedAt + 40);
    stopping = true;
    await loops;
    t.same(unexpected, [], "every one of alice's sends resolved");

    const stored = await history(bob.client, conversation.id);
    const last = stored.at(-1)!.seq;
    await A.reachSeq(last);
    t.notOk(seqProblem(A.seqs(), 1, last), `seqs 1..${last}: each once, in order, no gap`);
    t.same(A.events.map((e) => e.type === 'chat.message' && e.message.id), stored.map((m) => m.id), 'the events are the REST history, message for message');
    const clientIds = stored.map((m) => m.client_id);
    t.equal(new Set(clientIds).size, stored.length, 'no client_id stored twice: resends were deduplicated');
    const byId = new Map(stored.map((m) => [m.id, m]));
    t.ok(aliceSent.length > 0 && aliceSent.every((m) => byId.get(m.id)?.client_id === m.client_id), `alice's ${aliceSent.length} resolved sends are all stored, as resolved`);
    // Alice always has a send in flight, so one was pending when her connection died.
    const resent = aliceSent.filter((m) => alice.wire.sentOn(m.client_id!).length > 1);
    t.equal(resent.length, 1, `one send was in flight at the kill and resent after the reconnect (${resent.map((m) => m.client_id).join(', ')})`);
    t.same(alice.wire.sentOn(resent[0]!.client_id!), [0, alice.wire.attempts.length - 1], 'once on the lost connection, once on the new one');
    const resumed = alice.wire.lastSeqs().slice(1);
    t.ok(resumed.length >= 1, `${resumed.length} reconnect attempt(s)`);
    t.same(resumed, Array(resumed.length).fill(killedAt), `every reconnect asked to resume after the last delivered seq (last_seq=${killedAt})`);
    t.equal(proxy.routes().at(-1), r1.port, 'the reconnect landed on r1');
    t.same(invalidFrames(alice.wire.frames, chatEventValidator), [], 'every frame validates');
    t.comment(`${stored.length} messages, ${aliceSent.length} of them alice's; ${alice.wire.attempts.length - 1} reconnect attempt(s)`);
  });
});
