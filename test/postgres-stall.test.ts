/**
 * A network stall between one service replica and PostgreSQL: a TCP proxy that stops
 * forwarding without closing anything (test/helpers/tcp-proxy.ts). The server never sees the
 * replica's statements, so its statement_timeout cannot fire; only the replica's own deadline
 * (DATABASE_RESPONSE_TIMEOUT_MS) can. Two replicas on one database, only r1 behind the proxy,
 * sockets sending on both over Redis, limits on. While stalled: r1's sends are answered
 * `unavailable` (503 over REST), never left hanging, and its readiness answers promptly and
 * reports the database; when the proxy resumes r1 recovers by itself, and every client ends
 * with every acknowledged event once, in seq order.
 */
import t from 'tap';
import { freshPostgresDatabase } from './helpers/database.js';
import { eventually, startTopology } from './helpers/replicas.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { startTraffic, verifyTraffic } from './suites/chat-faults.js';

const RESPONSE_TIMEOUT_MS = 2_500;
const FAULT_ENV = {
  DATABASE_STATEMENT_TIMEOUT_MS: '1500',
  DATABASE_RESPONSE_TIMEOUT_MS: String(RESPONSE_TIMEOUT_MS),
  DATABASE_CONNECT_TIMEOUT_MS: '1000',
  READINESS_DATABASE_GRACE_MS: '1000',
};

t.test('PostgreSQL stalls (no FIN) under r1 mid-traffic: unavailable while stalled, recovered after, nothing lost', async (t) => {
  const databaseUrl = await freshPostgresDatabase(t, 'pgstall');
  const direct = new URL(databaseUrl);
  const proxy = await startTcpProxy(t, [Number(direct.port || 5432)]);
  const proxied = new URL(databaseUrl);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(proxy.port);
  const topology = await startTopology(t, {
    backend: 'redis',
    replicas: 2,
    databaseUrl,
    env: FAULT_ENV,
    replicaEnv: (index): Record<string, string> => (index === 1 ? { DATABASE_URL: proxied.toString() } : {}),
  });
  const stalled = topology.replicas[1]!;
  const traffic = await startTraffic(t, topology, 'pst');
  await traffic.reach(30);
  const ackedBefore = traffic.stats.acked.size;
  const unavailableBefore = traffic.stats.unavailable;

  const stalledAt = Date.now();
  proxy.stall();
  // r1's sender (prefix pst1) is told its sends cannot be stored now.
  await eventually('a send on the stalled replica answered unavailable', () => traffic.stats.unavailable > unavailableBefore, RESPONSE_TIMEOUT_MS * 6);
  const firstUnavailableMs = Date.now() - stalledAt;
  t.pass(`a send on ${stalled.name} was answered unavailable ${firstUnavailableMs} ms into the stall`);

  const asked = Date.now();
  const rest = await stalled.http('POST', `/api/conversations/${traffic.conversationId}/messages/`, { token: traffic.owner.token, body: { content: 'during the stall' } });
  const restMs = Date.now() - asked;
  t.equal(rest.status, 503, `a REST send on ${stalled.name} while stalled: 503 (${restMs} ms)`);
  t.ok(restMs < RESPONSE_TIMEOUT_MS * 3, 'answered within the response timeout and a reconnect attempt');

  const probed = Date.now();
  const ready = await fetch(`${stalled.url}/readyz`, { signal: AbortSignal.timeout(5_000) });
  const readyMs = Date.now() - probed;
  const readiness = (await ready.json()) as { status: string; checks: Record<string, boolean> };
  t.equal(readiness.checks.database, false, `${stalled.name}'s readiness reports the database (${readyMs} ms, ${ready.status} ${readiness.status})`);
  t.ok(readyMs < 3_000, 'and answers promptly (a probe must not hang on the stalled connection)');
  t.equal(ready.status, 503, `past READINESS_DATABASE_GRACE_MS this pod is not ready (the other one is)`);
  t.equal((await topology.at(0).http('GET', '/readyz')).status, 200, 'the other replica is ready');
  t.ok(proxy.stalled, 'still stalled');

  const resumedAt = Date.now();
  const stalledMs = resumedAt - stalledAt;
  const ackedOnStalled = (): number => [...traffic.stats.acked].filter((id) => id.startsWith('pst1-')).length;
  const stalledSenderAcked = ackedOnStalled();
  proxy.resume();
  await eventually(`a send on ${stalled.name} acknowledged again`, () => ackedOnStalled() > stalledSenderAcked, 30_000);
  const recoveredMs = Date.now() - resumedAt;
  t.pass(`${stalled.name} recovered by itself: a send acknowledged ${recoveredMs} ms after the proxy resumed`);
  await eventually(`${stalled.name} ready again`, async () => (await stalled.http('GET', '/readyz')).json?.checks?.database === true, 30_000);

  const last = Math.max(...traffic.clients.map((client) => client.lastSeq()));
  await traffic.reach(last + 30);
  await traffic.stop();
  await verifyTraffic(t, topology, traffic);
  t.comment(
    `chaos: PostgreSQL stall under one replica: ${traffic.stats.acked.size} acknowledged (${traffic.stats.acked.size - ackedBefore} after the stall began), ` +
      `${traffic.stats.unavailable - unavailableBefore} unavailable, first unavailable after ${firstUnavailableMs} ms, stalled ${stalledMs} ms, ` +
      `first acknowledged send on the stalled replica ${recoveredMs} ms after the resume`,
  );
});
