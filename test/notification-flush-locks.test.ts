/**
 * Two replicas flushing notifications at once must not deadlock (src/notifications/batcher.ts).
 * A flush reads the senders' own unread rows (sending counts as reading) and upserts the
 * recipients' rows. Seen in a fan-out benchmark: replica A's flush had read x's row in one
 * conversation and waited for p's row in another, which replica B's flush had read while it
 * waited for x's row. PostgreSQL broke the cycle after deadlock_timeout (a second), and
 * one flush failed and was retried. Here that schedule is made certain: a third connection
 * holds a row that A's upsert locks last, so A is waiting, holding what it has locked so
 * far, when B starts.
 */
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { createDatabase } from '../src/db/client.js';
import { NotificationBatcher, type FlushedRow } from '../src/notifications/batcher.js';
import { call, createConversation, register, type Session } from './helpers/api.js';
import { buildTestApp, testDatabase } from './helpers/app.js';
import { holdRow } from './helpers/row-lock.js';
import { within } from './helpers/within.js';

const silent = { warn() {}, error() {}, info() {} } as never;

t.test('two flushes whose senders and recipients cross: both written, neither a deadlock victim', async (t) => {
  const { database, url } = await testDatabase(t, 'postgres');
  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  // Registered in this order, so p < w: A's upsert, in (user, conversation) order, locks p's row before it reaches w's, held.
  const [x, y, p, q, w, v] = [await register(app), await register(app), await register(app), await register(app), await register(app), await register(app)];
  const c = await createConversation(app, x, [y]);
  const cPrime = await createConversation(app, p, [q]);
  const c3 = await createConversation(app, w, [v]);
  const send = async (who: Session, conversation: number) => {
    const response = await call(app, 'POST', `/api/conversations/${conversation}/messages/`, { token: who.token, body: { content: `from ${who.user.username}` } });
    t.equal(response.status, 201);
    return (response.json as { id: number }).id;
  };
  const mx = await send(x, c);
  const my = await send(y, c);
  const mp = await send(p, cPrime);
  const mq = await send(q, cPrime);
  const mv = await send(v, c3);
  await app.close();

  // The state both flushes find, as earlier flushes would have left it: x, p and w have unread
  // rows. The markers are where the sends left them (each sender's at their own message), so
  // y's message is past x's marker, q's past p's, and v's past w's.
  await database.query(sql`delete from notifications`);
  for (const [user, conversation, message] of [[x, c, my], [p, cPrime, mq], [w, c3, mv]] as const) {
    await database.query(sql`insert into notifications (user_id, kind, conversation_id, message_id, text) values (${user.user.id}, 'messages.new', ${conversation}, ${message}, 'earlier')`);
  }

  // The database layer retries a deadlock victim by itself (db/retry.ts), so after
  // deadlock_timeout both flushes would succeed anyway. With the timeout past the test's
  // patience, a cycle is a flush that never ends: certain to fail, not merely slow.
  await database.query(sql.raw(`alter database "${new URL(url!).pathname.slice(1)}" set deadlock_timeout = '60s'`));
  // Each replica on connections of its own, as two processes would be (opened after the setting).
  const replica = (label: string) => {
    const own = createDatabase({ url, embeddedDir: '', poolSize: 2 });
    t.teardown(() => own.close());
    const failures: string[] = [];
    const delivered: FlushedRow[] = [];
    const batcher = new NotificationBatcher(own, (rows) => delivered.push(...rows), silent, {
      flushed: (_entries, _seconds, failed) => void (failed && failures.push(label)),
    });
    return { batcher, failures, delivered };
  };
  const a = replica('A');
  const b = replica('B');

  const admin = postgres(url!, { max: 1, onnotice: () => {} });
  t.teardown(() => admin.end({ timeout: 1 }));
  const waitingForLocks = async () =>
    Number((await admin`select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)[0]!.n);
  /** Resolves once `n` backends wait for a lock, or `settled` has settled; polls, never a fixed wait. */
  const untilWaiting = async (n: number, settled: Promise<unknown>) => {
    let done = false;
    void settled.finally(() => (done = true));
    while (!done && (await waitingForLocks()) < n) await new Promise((resolve) => setImmediate(resolve));
  };

  const { release, done } = await holdRow(t, url!, (tx) => tx`select 1 from notifications where user_id = ${w.user.id} for update`);
  // Each batcher's entries are added in the same turn as its flush: added earlier, a batcher
  // flushes by itself NOTIFY_FLUSH_MS later, and on a loaded machine B's own flush then ran
  // before A held p's row (p read first, then notified anew by A).
  a.batcher.add(c, x.user.id, x.user.username, mx);
  a.batcher.add(cPrime, q.user.id, q.user.username, mq);
  a.batcher.add(c3, v.user.id, v.user.username, mv);
  const flushA = a.batcher.flush();
  await within(untilWaiting(1, flushA), 'A waiting for the held row');
  b.batcher.add(c, y.user.id, y.user.username, my);
  b.batcher.add(cPrime, p.user.id, p.user.username, mp);
  const flushB = b.batcher.flush();
  await within(untilWaiting(2, flushB), 'B waiting or written');
  release();
  await done;
  await within(Promise.all([flushA, flushB]), 'both flushes, with no lock cycle between them');

  t.same([...a.failures, ...b.failures], [], 'no flush failed');
  t.equal(a.batcher.size + b.batcher.size, 0, 'nothing left for a retry');
  const unread = await database.query<{ user_id: number; conversation_id: number }>(
    sql`select user_id, conversation_id from notifications where not is_read order by user_id, conversation_id`,
  );
  t.same(
    unread.map((row) => [row.user_id, row.conversation_id]),
    [[x.user.id, c], [w.user.id, c3]],
    'unread: x (from y) and w (from v), each once; p read by sending',
  );
  const readBySending = [...a.delivered, ...b.delivered].filter((row) => row.read_by_sending).map((row) => Number(row.user_id)).sort((l, r) => l - r);
  t.same(readBySending, [x.user.id, p.user.id].sort((l, r) => l - r), 'x and p read their rows by sending, and their devices are told');
});

t.test('one flush: a sender whose conversation has a newer message from someone else is notified of it, not read', async (t) => {
  const { database } = await testDatabase(t, 'postgres');
  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  const [x, y] = [await register(app), await register(app)];
  const c = await createConversation(app, x, [y]);
  const send = async (who: Session) => {
    const response = await call(app, 'POST', `/api/conversations/${c}/messages/`, { token: who.token, body: { content: `from ${who.user.username}` } });
    t.equal(response.status, 201);
    return (response.json as { id: number }).id;
  };
  const mx = await send(x);
  const my1 = await send(y);
  const my2 = await send(y);
  await app.close();
  // Both had unread rows; x's marker is at mx, y's at my2.
  await database.query(sql`delete from notifications`);
  for (const user of [x, y]) {
    await database.query(sql`insert into notifications (user_id, kind, conversation_id, message_id, count, text) values (${user.user.id}, 'messages.new', ${c}, ${mx}, 5, 'earlier')`);
  }
  const delivered: FlushedRow[] = [];
  const batcher = new NotificationBatcher(database, (rows) => delivered.push(...rows), silent);
  batcher.add(c, x.user.id, x.user.username, mx);
  batcher.add(c, y.user.id, y.user.username, my1);
  batcher.add(c, y.user.id, y.user.username, my2);
  await batcher.flush();

  const rows = await database.query<{ user_id: number; is_read: boolean; count: number; message_id: unknown }>(
    sql`select user_id, is_read, count, message_id from notifications order by user_id, id`,
  );
  t.same(
    rows.map((row) => [row.user_id, row.is_read, row.count, Number(row.message_id)]),
    [
      [x.user.id, false, 2, my2],
      [y.user.id, true, 5, mx],
    ],
    'x: the same row, counting anew from y\'s two messages; y: read by sending',
  );
  t.same(delivered.filter((row) => row.read_by_sending).map((row) => Number(row.user_id)), [y.user.id], 'only y\'s row is pushed as read');
});
