/**
 * PostgreSQL faults under live traffic (the chat-faults machinery: resuming clients, senders
 * that resend by client_id, plus a REST sender resending 503s by client_id): the server
 * restarted after a crash (chat-database-faults), or the primary killed and its standby
 * promoted (chat-postgres-failover). Sends during the fault are answered `unavailable` or 503
 * within a bound (never silence); once the database is back a send is acknowledged within a
 * bound, every acknowledged message is stored once and every client holds every event once,
 * in seq order.
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

export interface DatabaseFaultOptions {
  /** Every socket send and REST send is answered within this (ms): never silence. Default 10 s. */
  answerWithinMs?: number;
  /** A send is acknowledged within this of the database serving again (ms). Default 10 s. */
  recoverWithinMs?: number;
}

interface RestSender {
  statuses: Map<number, number>;
  slowestMs: number;
  stop(): Promise<void>;
}

/**
 * One REST client sending a message at a time, alternating replicas, as a real one does: a
 * 503 is resent with the same client_id until it gets its 201 (or 200: the first attempt was
 * stored). Either counts as acknowledged
 * (into `acked`, checked by verifyTraffic with the socket sends); each request must be
 * answered within `answerWithinMs`.
 */
function startRestSender(topology: Topology, traffic: Awaited<ReturnType<typeof startTraffic>>, prefix: string, answerWithinMs: number): RestSender {
  const statuses = new Map<number, number>();
  const sender: RestSender = { statuses, slowestMs: 0, stop: async () => {} };
  let stopping = false;
  const run = (async () => {
    for (let i = 0; !stopping; i++) {
      const clientId = `${prefix}-${i}`;
      for (let attempt = 0; ; attempt++) {
        const replica = topology.at(i + attempt);
        const started = Date.now();
        const response = await fetch(`${replica.url}/api/conversations/${traffic.conversationId}/messages/`, {
          method: 'POST',
          headers: { authorization: `Bearer ${traffic.owner.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ content: `rest #${i}`, client_id: clientId }),
          signal: AbortSignal.timeout(answerWithinMs),
        });
        await response.arrayBuffer();
        sender.slowestMs = Math.max(sender.slowestMs, Date.now() - started);
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        // 200 is the answer to a resent client_id whose first send was stored after all (the
        // commit went through, its answer was lost with the connection): the original message.
        if (response.status === 201 || (response.status === 200 && attempt > 0)) {
          traffic.stats.acked.add(clientId);
          break;
        }
        if (response.status !== 503) {
          traffic.stats.unexpected.push(`REST ${clientId}: ${response.status}`);
          break;
        }
        if (stopping) return;
      }
    }
  })();
  // A failed (unanswered) request stops the test with its reason when stop() is awaited.
  run.catch(() => {});
  sender.stop = async () => {
    stopping = true;
    await run;
  };
  return sender;
}

/**
 * `fault` breaks the database and returns once it is serving again (restart, or promote);
 * the suite measures from its start to the first acknowledged send after it.
 */
export async function databaseFaultSuite(t: Test, topology: Topology, name: string, fault: () => Promise<void>, options: DatabaseFaultOptions = {}): Promise<void> {
  const answerWithinMs = options.answerWithinMs ?? 10_000;
  const recoverWithinMs = options.recoverWithinMs ?? 10_000;
  await t.test(`${name} mid-traffic: sends answered, nothing lost, nothing doubled`, async (t) => {
    const prefix = name.replace(/\W/g, '').slice(0, 6);
    const traffic = await startTraffic(t, topology, prefix);
    const rest = startRestSender(topology, traffic, `${prefix}rest`, answerWithinMs);
    t.teardown(() => rest.stop().catch(() => {}));
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
    await rest.stop();
    t.ok(traffic.stats.unavailable > unavailableBefore, `sends during the fault were answered unavailable (${traffic.stats.unavailable - unavailableBefore})`);
    t.ok(traffic.stats.slowestAnswerMs < answerWithinMs, `every socket send was answered within ${answerWithinMs} ms (slowest ${traffic.stats.slowestAnswerMs} ms)`);
    t.ok(rest.slowestMs < answerWithinMs, `every REST send was answered within ${answerWithinMs} ms (slowest ${rest.slowestMs} ms)`);
    t.same([...rest.statuses.keys()].filter((status) => status !== 201 && status !== 200 && status !== 503), [], `REST sends answered 201, 503 or (a resend) 200 only (${JSON.stringify(Object.fromEntries(rest.statuses))})`);
    const afterBack = recoveredMs - backAfter;
    t.ok(afterBack < recoverWithinMs, `a send was acknowledged ${afterBack} ms after the database was serving again (bound ${recoverWithinMs} ms)`);
    await verifyTraffic(t, topology, traffic);
    t.comment(
      `chaos: ${name}: ${traffic.stats.acked.size} acknowledged (${traffic.stats.acked.size - ackedBefore} after the fault began; REST ${JSON.stringify(Object.fromEntries(rest.statuses))}), ` +
        `${traffic.stats.unavailable - unavailableBefore} socket sends unavailable, database back after ${backAfter} ms, first acknowledged send ${recoveredMs} ms after the fault began ` +
        `(${afterBack} ms after the database was back); slowest answer: socket ${traffic.stats.slowestAnswerMs} ms, REST ${rest.slowestMs} ms`,
    );
  });
}
