/**
 * A network stall between one service replica and Redis: a TCP proxy that stops forwarding
 * without closing anything (test/helpers/tcp-proxy.ts), so the replica's connections stay
 * "up" and nothing answers. Two replicas over one Redis, only r1 behind the proxy, sockets
 * sending on both, limits on as in production. While stalled: r1 notices (readiness reports
 * the bus), socket tickets and every send are answered (no request hangs), and when the
 * proxy resumes r1 recovers by itself; every client ends with every acknowledged event once,
 * in seq order.
 */
import t from 'tap';
import { conversationChannel } from '../src/redis/names.js';
import { startRedisServer } from './helpers/redis-server.js';
import { eventually, startTopology } from './helpers/replicas.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { startTraffic, verifyTraffic } from './suites/chat-faults.js';

const COMMAND_TIMEOUT_MS = 1_000;
/** How long the stall lasts once r1 has noticed it: several ping intervals and liveness checks. */
const STALL_AFTER_NOTICED_MS = 4_000;

t.test('Redis stalls (no FIN) under r1 mid-traffic: answered while stalled, recovered after, nothing lost', async (t) => {
  const redis = await startRedisServer(t);
  const proxy = await startTcpProxy(t, [redis.port]);
  const topology = await startTopology(t, {
    backend: 'redis',
    replicas: 2,
    redis,
    // Socket slots on, as in production: a socket's set-up asks Redis too.
    env: { REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS), MAX_SOCKETS_PER_USER: '1000' },
    replicaEnv: (index): Record<string, string> => (index === 1 ? { REDIS_URL: `redis://127.0.0.1:${proxy.port}` } : {}),
  });
  const stalled = topology.replicas[1]!;
  const traffic = await startTraffic(t, topology, 'rst');
  const channel = conversationChannel(traffic.conversationId);
  await topology.waitSubscribers(channel, 2);
  await traffic.reach(30);
  const ackedBefore = traffic.stats.acked.size;
  const resetsBefore = await stalled.metric('chat_bus_resets_total');

  const stalledAt = Date.now();
  proxy.stall();
  await eventually(
    `${stalled.name} reports the bus down (and stays ready: REST and sends need only PostgreSQL)`,
    async () => {
      const ready = await stalled.http('GET', '/readyz');
      return ready.status === 200 && ready.json?.checks?.bus === false;
    },
    10_000,
  );
  const noticedMs = Date.now() - stalledAt;
  t.pass(`${stalled.name} noticed the stall after ${noticedMs} ms`);
  t.equal((await topology.at(0).http('GET', '/readyz')).json?.checks?.bus, true, 'the other replica is unaffected');

  // Nothing that needs Redis hangs: a socket ticket is refused after the command timeout.
  const asked = Date.now();
  const ticket = await stalled.http('POST', '/api/auth/ws-ticket/', { token: traffic.owner.token });
  const ticketMs = Date.now() - asked;
  t.equal(ticket.status, 503, 'a socket ticket while Redis stalls: 503');
  t.ok(ticketMs < COMMAND_TIMEOUT_MS * 4, `answered within the command timeout (${ticketMs} ms)`);

  // Sends on both replicas keep being answered (and stored) through the stall: r1's sender
  // (prefix rst1) too, its echo brought by its rooms' position checks while r1 cannot publish.
  const ackedOn = (prefix: string): number => [...traffic.stats.acked].filter((id) => id.startsWith(`${prefix}-`)).length;
  const stalledSenderBefore = ackedOn('rst1');
  const ackedAtNotice = traffic.stats.acked.size;
  await eventually('sends acknowledged during the stall on both replicas', () => traffic.stats.acked.size >= ackedAtNotice + 10 && ackedOn('rst1') >= stalledSenderBefore + 3, 20_000);
  t.pass(`${stalled.name}'s sender is answered while stalled`);
  await new Promise((resolve) => setTimeout(resolve, STALL_AFTER_NOTICED_MS));
  t.ok(proxy.stalled, 'still stalled');
  const ackedDuringStall = traffic.stats.acked.size - ackedBefore;

  const resumedAt = Date.now();
  proxy.resume();
  await eventually(`${stalled.name} reports the bus up again`, async () => (await stalled.http('GET', '/readyz')).json?.checks?.bus === true, 30_000);
  await topology.waitSubscribers(channel, 2, 30_000);
  const recoveredMs = Date.now() - resumedAt;
  t.pass(`${stalled.name} recovered by itself ${recoveredMs} ms after the proxy resumed`);
  t.ok((await stalled.metric('chat_bus_resets_total')) > resetsBefore, 'and restored its subscriptions (a bus reset: rooms resynced)');
  t.equal((await stalled.http('POST', '/api/auth/ws-ticket/', { token: traffic.owner.token })).status, 201, 'tickets work again');

  const last = Math.max(...traffic.clients.map((client) => client.lastSeq()));
  await traffic.reach(last + 30);
  await traffic.stop();
  await verifyTraffic(t, topology, traffic);
  const unchecked = await stalled.metric('chat_rate_limiter_unavailable_total');
  t.ok(unchecked > 0, `the rate limiter failed open on ${stalled.name} (${unchecked} decisions)`);
  t.comment(
    `chaos: Redis stall under one replica: ${traffic.stats.acked.size} acknowledged (${ackedDuringStall} while stalled), ${traffic.stats.unavailable} unavailable, ` +
      `noticed after ${noticedMs} ms, stalled ${resumedAt - stalledAt} ms, recovered ${recoveredMs} ms after the resume`,
  );
});
