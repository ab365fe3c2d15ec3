/**
 * PostgreSQL faults under live traffic (the chat-faults machinery: resuming clients, senders
 * that resend by client_id): the server restarted after a crash (a failover to a promoted
 * standby fits the same suite, but has no test yet). Sends during the fault are answered
 * `unavailable` (never silence); once the database is back, every acknowledged message is
 * stored once and every client holds every event once, in seq order.
 */
import type { Test } from 'tap';
import type { Topology } from '../helpers/replicas.js';
import { startTraffic, verifyTraffic } from './chat-faults.js';

/** Resolves once a send acknowledged after `since` has arrived; the ms it took. */
async function recovered(traffic: Awaited<ReturnType<typeof startTraffic>>, since: number, timeoutMs = 30_000): Promise<number> {
  const before = traffic.stats.acked.size;
  const deadline = since + timeoutMs;
  while (traffic.stats.acked.size <= before) {
    if (Date.now() > deadline) {
      const states = traffic.senders.map((sender) => `${sender.label}: ${sender.incarnations.length} sockets, open ${sender.current().isOpen}, last events ${JSON.stringify(sender.current().events.slice(-2))}`);
      throw new Error(`no send acknowledged within ${timeoutMs} ms of the fault: ${JSON.stringify(traffic.stats, (_k, v: unknown) => (v instanceof Set ? v.size : v))}\n${states.join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - since;
}

/**
 * `fault` breaks the database and returns once it is serving again (restart, or promote);
 * the suite measures from its start to the first acknowledged send after it.
 */
export async function databaseFaultSuite(t: Test, topology: Topology, name: string, fault: () => Promise<void>): Promise<void> {
  await t.test(`${name} mid-traffic: sends answered, nothing lost, nothing doubled`, async (t) => {
    const traffic = await startTraffic(t, topology, name.replace(/\W/g, '').slice(0, 6));
    await traffic.reach(30);
    const ackedBefore = traffic.stats.acked.size;
    const unavailableBefore = traffic.stats.unavailable;
    const started = Date.now();
    await fault();
    const backAfter = Date.now() - started;
    const recoveredMs = await recovered(traffic, started).catch(async (error: unknown) => {
      for (const replica of topology.replicas) {
        const t0 = Date.now();
        const rest = await replica.http('POST', `/api/conversations/${traffic.conversationId}/messages/`, { token: traffic.owner.token, body: { content: 'probe' } }).catch((e: unknown) => ({ status: String(e) }));
        const ready = await replica.http('GET', '/readyz');
        const metrics = await (await fetch(`${replica.url}/metrics`)).text();
        t.comment(`${replica.name}: REST ${rest.status} in ${Date.now() - t0} ms, readyz ${ready.body}\n${metrics.split('\n').filter((l) => /^chat_(bus|event_log|events|room|http_unav)/.test(l)).join('\n')}`);
      }
      throw error;
    });
    const last = Math.max(...traffic.clients.map((client) => client.lastSeq()));
    await traffic.reach(last + 30);
    await traffic.stop();
    t.ok(traffic.stats.unavailable > unavailableBefore, `sends during the fault were answered unavailable (${traffic.stats.unavailable - unavailableBefore})`);
    await verifyTraffic(t, topology, traffic);
    t.comment(
      `chaos: ${name}: ${traffic.stats.acked.size} acknowledged (${traffic.stats.acked.size - ackedBefore} after the fault began), ` +
        `${traffic.stats.unavailable - unavailableBefore} unavailable, database back after ${backAfter} ms, first acknowledged send ${recoveredMs} ms after the fault began`,
    );
  });
}
