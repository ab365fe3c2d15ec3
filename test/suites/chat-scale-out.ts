/**
 * What only several replicas sharing PostgreSQL and Redis can show (API.md "Scale-out"): a
 * replica receives only the traffic of conversations its sockets are in, and replicas started
 * at once on an empty database apply each migration once.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import type { Test } from 'tap';
import { conversationChannel, userChannel } from '../../src/redis/names.js';
import { createConversation, isAnswerTo, openChat, openNotifications, range, registerUsers, sendMessages } from '../helpers/chat-api.js';
import { ROOT, type Replica, type Topology } from '../helpers/replicas.js';

/**
 * A replica whose sockets are in none of a conversation's channels receives none of its
 * traffic from Redis. Needs three replicas on Redis or a Redis Cluster.
 */
export async function isolationSuite(t: Test, topology: Topology): Promise<void> {
  await t.test('a replica with no socket in a conversation receives none of its traffic', async (t) => {
    const [r0, r1, r2] = topology.replicas as [Replica, Replica, Replica];
    const [a, b, c, d] = await registerUsers(topology, 4, 'iso');
    const x = await createConversation(r0, a!, [b!]);
    const y = await createConversation(r0, c!, [d!]);
    const A = await openChat(t, r0, x, a);
    const B = await openChat(t, r1, x, b);
    const C = await openChat(t, r2, y, c);
    const D = await openChat(t, r0, y, d);
    const N = await openNotifications(t, r1, b);
    await Promise.all([A.sync(), B.sync(), C.sync(), D.sync()]);
    await topology.waitSubscribers(conversationChannel(x), 2);
    await topology.waitSubscribers(conversationChannel(y), 2);
    await topology.waitSubscribers(userChannel(b!.user.id), 1);
    t.pass('conversation X is subscribed by 2 replicas, Y by 2, B\'s notifications by 1');

    // Events, typing and receipts: presence payloads of Y's own members (sent when their
    // sockets opened, racing the room's subscription) are Y's traffic but not countable here.
    const received = async () =>
      (await r2.metric('chat_bus_payloads_received_total')) - (await r2.metric('chat_bus_payloads_received_total', { kind: 'presence' }));
    const before = await received();
    A.send({ type: 'typing', is_typing: true });
    await sendMessages(A, range(1, 20).map((i) => ({ message: `x${i}`, client_id: `x${i}` })));
    await B.waitForSeq(20);
    // D publishes on the same replica, after all of X's traffic: Redis delivers a connection's
    // publishes in order, so once C (on r2) has Y's event, r2 would have had X's already.
    D.send({ type: 'chat_message', message: 'y1', client_id: 'y1' });
    await C.waitFor(isAnswerTo('y1'));
    const after = await received();
    t.equal(after - before, 1, `r2 received exactly the one payload of Y (${before} → ${after}), nothing of X`);
    t.ok(before >= 0 && (await r0.metric('chat_bus_payloads_received_total')) > 0, 'the counter counts on replicas that are subscribed');
    // B may or may not have heard of X's messages yet (the flush coalesces for 100 ms); of Y, never.
    t.same(
      N.events.filter((event) => event.type === 'notification' && event.message.conversation_id !== x),
      [],
      'B is notified of nothing but its own conversation',
    );

    await B.close();
    await topology.waitSubscribers(conversationChannel(x), 1);
    await A.close();
    await topology.waitSubscribers(conversationChannel(x), 0);
    await N.close();
    await topology.waitSubscribers(userChannel(b!.user.id), 0);
    t.pass('the last local socket unsubscribes its replica');
  });
}

/**
 * For a topology whose replicas all started at once on an empty database: every migration is
 * recorded exactly once (they raced under the advisory lock; one applied, the others waited).
 */
export async function migrationsAppliedOnce(t: Test, topology: Topology): Promise<void> {
  await t.test('replicas started at once on an empty database applied each migration once', async (t) => {
    if (!topology.databaseUrl) throw new Error('needs PostgreSQL');
    t.ok(topology.replicas.every((replica) => replica.running), `all ${topology.replicas.length} replicas are ready`);
    const journal = JSON.parse(readFileSync(join(ROOT, 'drizzle', 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] };
    const sql = postgres(topology.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql<{ hash: string }[]>`select hash from drizzle.__drizzle_migrations order by id`;
      t.equal(rows.length, journal.entries.length, `${journal.entries.length} migration(s) recorded once each`);
      t.equal(new Set(rows.map((row) => row.hash)).size, rows.length, 'no migration recorded twice');
      // pg_locks is the whole cluster's: test files running beside this one migrate databases of their own.
      const locks = await sql`
        select 1 from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`;
      t.equal(locks.length, 0, 'the migration lock was released');
    } finally {
      await sql.end({ timeout: 5 });
    }
    for (const replica of topology.replicas) {
      t.notMatch(replica.log(), /migrat\w* failed|already exists/i, `${replica.name} logged no migration error`);
    }
  });
}
