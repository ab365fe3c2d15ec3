/**
 * Redis Sentinel failover under live traffic: a primary, a replica and three Sentinels, each
 * a redis-server on its own loopback port; two service replicas that know only the Sentinels
 * (REDIS_SENTINELS, REDIS_SENTINEL_NAME, no REDIS_URL) with the rate limits on, as in
 * production. The primary is SIGKILLed mid-traffic, Sentinel promotes the replica, and every
 * Redis client of each service replica (bus publisher and subscriber, rate limiter, session
 * stores) must follow it without a restart, while every send is answered and, at the end,
 * every client holds every acknowledged event exactly once, in seq order.
 */
import t from 'tap';
import { conversationChannel, ticketKey } from '../src/redis/names.js';
import { redisCli, startRedisReplica, startRedisServer, startSentinel, type RedisServer } from './helpers/redis-server.js';
import { eventually, startTopology } from './helpers/replicas.js';
import { startTraffic, verifyTraffic } from './suites/chat-faults.js';

const NAME = 'chat-primary';

/** `SENTINEL MASTER` as a map (redis-cli prints field and value on alternate lines). */
async function sentinelView(sentinel: RedisServer): Promise<Map<string, string>> {
  const lines = (await redisCli(sentinel.port, 'SENTINEL', 'MASTER', NAME)).trim().split('\n');
  const view = new Map<string, string>();
  for (let i = 0; i + 1 < lines.length; i += 2) view.set(lines[i]!, lines[i + 1]!);
  return view;
}

const primaryPort = async (sentinel: RedisServer): Promise<number> =>
  Number((await redisCli(sentinel.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME)).trim().split('\n')[1]);

t.test('Sentinel promotes the replica mid-traffic: every client follows, nothing lost, nothing doubled', async (t) => {
  const primary = await startRedisServer(t);
  const replica = await startRedisReplica(t, primary);
  const sentinels: RedisServer[] = [];
  for (let i = 0; i < 3; i++) sentinels.push(await startSentinel(t, { name: NAME, primary, downAfterMs: 1_000, failoverTimeoutMs: 3_000 }));
  // Each Sentinel has found the replica (INFO of the primary) and the two others (hello channel).
  await eventually(
    'every Sentinel sees the replica and its two peers',
    async () => {
      const views = await Promise.all(sentinels.map(sentinelView));
      return views.every((view) => view.get('num-slaves') === '1' && view.get('num-other-sentinels') === '2');
    },
    30_000,
  );
  t.pass('three Sentinels monitor the primary and its replica');

  const topology = await startTopology(t, {
    backend: 'redis',
    replicas: 2,
    redis: primary,
    env: {
      // No REDIS_URL: the Sentinels are the only address the service has.
      REDIS_URL: '',
      REDIS_SENTINELS: sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(','),
      REDIS_SENTINEL_NAME: NAME,
      REDIS_COMMAND_TIMEOUT_MS: '1000',
    },
  });
  const traffic = await startTraffic(t, topology, 'snt');
  const channel = conversationChannel(traffic.conversationId);
  await topology.waitSubscribers(channel, 2);
  await traffic.reach(30);
  const ackedBefore = traffic.stats.acked.size;

  const killedAt = Date.now();
  await primary.kill();
  t.pass(`primary (port ${primary.port}) SIGKILLed at seq ≥ 30`);
  await eventually('Sentinel to promote the replica', async () => (await primaryPort(sentinels[0]!)) === replica.port, 30_000);
  const promotedMs = Date.now() - killedAt;
  t.pass(`the replica (port ${replica.port}) was promoted ${promotedMs} ms after the kill`);

  // Every replica of the service is subscribed on the new primary and reports the bus healthy.
  await eventually(
    'both service replicas subscribed on the new primary',
    async () => Number((await redisCli(replica.port, 'PUBSUB', 'NUMSUB', channel)).trim().split('\n')[1]) === 2,
    30_000,
  );
  await Promise.all(
    topology.replicas.map((service) =>
      eventually(`${service.name} reports the bus healthy`, async () => (await service.http('GET', '/readyz')).json?.checks?.bus === true, 30_000),
    ),
  );
  const recoveredMs = Date.now() - killedAt;
  t.pass(`every service replica follows the new primary ${recoveredMs} ms after the kill, without a restart`);

  const resumedAt = Math.max(...traffic.clients.map((client) => client.lastSeq()));
  await traffic.reach(resumedAt + 30);

  // The session stores and the rate limiter moved too: a socket ticket is stored on the new
  // primary, and message counts are kept there.
  const issued = await topology.at(0).http('POST', '/api/auth/ws-ticket/', { token: traffic.owner.token });
  t.equal(issued.status, 201, 'a socket ticket is issued after the failover');
  t.equal((await redisCli(replica.port, 'EXISTS', ticketKey(issued.json.ticket as string))).trim(), '1', 'the ticket is stored on the new primary');
  const limitKeys = (await redisCli(replica.port, '--scan', '--pattern', 'chat:{rl:msg:*')).trim().split('\n').filter(Boolean);
  t.ok(limitKeys.length > 0, `the message limit counts on the new primary (${limitKeys.length} keys)`);

  await traffic.stop();
  await verifyTraffic(t, topology, traffic);
  const unchecked = (await Promise.all(topology.replicas.map((service) => service.metric('chat_rate_limiter_unavailable_total')))).reduce((a, b) => a + b, 0);
  t.comment(
    `chaos: Redis Sentinel failover (primary SIGKILLed): ${traffic.stats.acked.size} acknowledged (${traffic.stats.acked.size - ackedBefore} after the kill), ` +
      `${traffic.stats.unavailable} unavailable, ${unchecked} rate-limit decisions failed open, promoted after ${promotedMs} ms, ` +
      `every replica on the new primary after ${recoveredMs} ms`,
  );
});
