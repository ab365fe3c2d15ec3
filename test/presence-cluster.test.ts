/**
 * Presence across real replicas on PostgreSQL and Redis (API.md version 2, "Presence"): a user
 * online through a socket on one replica is online seen from the other; closing it makes them
 * offline (after the grace); a replica killed without a word (SIGKILL) takes its users offline
 * within PRESENCE_TIMEOUT_SECONDS; a quick reconnect or a second tab changes nothing; live
 * `presence` events reach the other members' chat sockets, never the user's own; and the Redis
 * commands presence sends are per change, not per heartbeat per user.
 */
import t from 'tap';
import { createConversation, openChat, openNotifications, registerUsers, type Session } from './helpers/chat-api.js';
import { eventually, type Replica, startTopology } from './helpers/replicas.js';
import type { ServerEvent } from './helpers/ws-client.js';
import { userChannel } from '../src/redis/names.js';

const TIMEOUT_SECONDS = 3;
const GRACE_MS = 600;

const topology = await startTopology(t, {
  backend: 'redis',
  replicas: 2,
  env: { PRESENCE_TIMEOUT_SECONDS: String(TIMEOUT_SECONDS), PRESENCE_GRACE_MS: String(GRACE_MS) },
});
const [r0, r1] = topology.replicas as [Replica, Replica];

type PresenceEvent = Extract<ServerEvent, { type: 'presence' }>;
const presenceOf = (userId: number, status?: 'online' | 'offline') => (event: ServerEvent): event is PresenceEvent =>
  event.type === 'presence' && event.user_id === userId && (status === undefined || event.status === status);

async function statusOf(replica: Replica, viewer: Session, conversationId: number, userId: number) {
  const response = await replica.http('GET', `/api/conversations/${conversationId}/presence/`, { token: viewer.token });
  if (response.status !== 200) throw new Error(`presence: ${response.status} ${response.body}`);
  return (response.json as { user_id: number; status: string; last_seen_at: string | null }[]).find((row) => row.user_id === userId)!;
}

// First, while nobody else is online: the counters are the cluster's.
t.test('Redis commands are per change, not per heartbeat per user', async (t) => {
  const users = (await registerUsers(topology, 12, 'pd')) as Session[];
  const commands = async (kind: string) => (await r0.metric('chat_presence_redis_commands_total', { kind })) + (await r1.metric('chat_presence_redis_commands_total', { kind }));
  const changes = async () => (await r0.metric('chat_presence_changes_total')) + (await r1.metric('chat_presence_changes_total'));
  const [changeBefore, changesBefore] = [await commands('change'), await changes()];
  const sockets = await Promise.all(users.map((user, i) => openNotifications(t, i % 2 ? r1 : r0, user)));
  await eventually('12 users online', async () => (await changes()) - changesBefore >= 12);
  const changeAfter = await commands('change');
  t.equal(changeAfter - changeBefore, 12 * 2, 'two commands per user coming online');

  // Idle: a few lease ticks go by (a tick is a sixth of the timeout) with 12 users online.
  const leaseBefore = await commands('lease');
  const idleStart = Date.now();
  await eventually('three lease ticks per replica', async () => (await commands('lease')) - leaseBefore >= 6, 10_000);
  const idleSeconds = (Date.now() - idleStart) / 1000;
  const ticks = (await commands('lease')) - leaseBefore;
  t.equal(await commands('change'), changeAfter, 'no per-user command while nothing changes');
  t.ok(ticks <= 2 * Math.ceil(idleSeconds / ((TIMEOUT_SECONDS * 1000) / 6 / 1000)) + 2, `${ticks} lease commands in ${idleSeconds.toFixed(1)} s for 2 replicas, whatever the users`);

  await Promise.all(sockets.map((socket) => socket.close()));
  await eventually('12 users offline', async () => (await changes()) - changesBefore >= 24);
  t.equal((await commands('change')) - changeBefore, 12 * 4, 'two more per user going offline: 4 per user in all');
  t.equal((await changes()) - changesBefore, 24, 'one change each way per user');
});

t.test('online on A is online from B; closing goes offline after the grace, with last_seen_at', async (t) => {
  const [alice, bob] = await registerUsers(topology, 2, 'pa') as [Session, Session];
  const cid = await createConversation(r0, alice, [bob]);
  t.match(await statusOf(r1, bob, cid, alice.user.id), { status: 'offline', last_seen_at: null }, 'never connected: offline, last_seen_at null');

  const watcher = await openChat(t, r1, cid, bob);
  await watcher.sync();
  const socket = await openNotifications(t, r0, alice);
  const online = await watcher.waitFor(presenceOf(alice.user.id, 'online'));
  t.match(online, { type: 'presence', conversation_id: cid, user: alice.user.username, user_id: alice.user.id, status: 'online', last_seen_at: String });
  t.match(await statusOf(r1, bob, cid, alice.user.id), { status: 'online' }, 'seen online from the other replica');
  t.match(await statusOf(r0, alice, cid, bob.user.id), { status: 'online' }, 'bob, whose chat socket is on B, is online seen from A');

  const closedAt = Date.now();
  await socket.close();
  const offline = await watcher.waitFor(presenceOf(alice.user.id, 'offline'));
  t.ok(Date.now() - closedAt >= GRACE_MS - 50, 'offline only once the grace ran out');
  t.ok(Date.parse(offline.last_seen_at!) >= closedAt - 1000, 'last_seen_at is when she left');
  t.match(await statusOf(r1, bob, cid, alice.user.id), { status: 'offline', last_seen_at: offline.last_seen_at }, 'the REST view agrees');
  t.equal(watcher.events.filter((e) => e.type === 'presence' && e.user_id === bob.user.id).length, 0, 'bob never hears of himself');
});

t.test('a reconnect within the grace and a second tab change nothing', async (t) => {
  const [carol, dan] = await registerUsers(topology, 2, 'pb') as [Session, Session];
  const cid = await createConversation(r0, carol, [dan]);
  const watcher = await openChat(t, r0, cid, dan);
  await watcher.sync();
  const first = await openChat(t, r0, cid, carol);
  await watcher.waitFor(presenceOf(carol.user.id, 'online'));
  const second = await openChat(t, r1, cid, carol);
  const tab = await openNotifications(t, r1, carol);
  await second.sync();
  // The tab counts once its channel is subscribed (that follows its session, and presence).
  await topology.waitSubscribers(userChannel(carol.user.id), 1);
  await first.close();
  // A blip: the socket on B goes and comes back (to A) well within the grace.
  await second.close();
  const back = await openChat(t, r0, cid, carol);
  await back.sync();
  await tab.close();
  // Dan's socket hears, through the same replica and channel, the next change after these:
  // carol leaving for good. Nothing may come before it.
  await back.close();
  await watcher.waitFor(presenceOf(carol.user.id, 'offline'));
  const carolEvents = watcher.events.filter(presenceOf(carol.user.id)).map((e) => e.status);
  t.same(carolEvents, ['online', 'offline'], 'one online, one offline: no flap through the reconnects and the second tab');
  t.same([...first.events, ...back.events].filter(presenceOf(carol.user.id)), [], 'carol’s own sockets hear nothing of her');
});

t.test('SIGKILL of a replica: its users go offline within PRESENCE_TIMEOUT_SECONDS', async (t) => {
  const [erin, frank] = await registerUsers(topology, 2, 'pc') as [Session, Session];
  const cid = await createConversation(r1, erin, [frank]);
  const watcher = await openChat(t, r1, cid, frank);
  await watcher.sync();
  await openNotifications(t, r0, erin);
  await watcher.waitFor(presenceOf(erin.user.id, 'online'));
  const killedAt = Date.now();
  await r0.kill('SIGKILL');
  const offline = await watcher.waitFor(presenceOf(erin.user.id, 'offline'), TIMEOUT_SECONDS * 1000 + 2_000);
  const took = Date.now() - killedAt;
  t.ok(took <= TIMEOUT_SECONDS * 1000 + 500, `offline ${took} ms after the kill (timeout ${TIMEOUT_SECONDS} s)`);
  t.match(offline, { status: 'offline', last_seen_at: String });
  t.match(await statusOf(r1, frank, cid, erin.user.id), { status: 'offline' });
  await r0.restart();
});
