/**
 * The notification flush rewrites a recipient's "new messages" row with every flush in which
 * its conversation had a message (src/notifications/batcher.ts). Those updates must change no
 * indexed column, so that PostgreSQL makes them in place (HOT): otherwise each one adds an
 * entry to every index of `notifications` and leaves the old ones dead until a vacuum, which
 * a busy conversation's recipients pay for with every message (README, Sustained load). The
 * mention key once indexed `message_id`, which the flush moves on every update.
 *
 * Counted on the index pages themselves (pageinspect): with every update HOT, each index
 * holds one entry for the one row, however often it was rewritten.
 */
import postgres from 'postgres';
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { call, createConversation, register } from './helpers/api.js';
import { buildTestApp, testDatabase } from './helpers/app.js';

const UPDATES = 6;

t.test('a recipient\'s "new messages" row is rewritten in place, flush after flush', async (t) => {
  const { database, url } = await testDatabase(t, 'postgres');
  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  const [x, y] = [await register(app), await register(app)];
  const conversation = await createConversation(app, x, [y]);
  // The first message inserts y's row; each later one, flushed on its own, updates it.
  for (let i = 0; i <= UPDATES; i++) {
    const sent = await call(app, 'POST', `/api/conversations/${conversation}/messages/`, { token: x.token, body: { content: `message ${i}` } });
    t.equal(sent.status, 201);
    await app.notifications.flush();
  }
  const listed = await call(app, 'GET', '/api/notifications/', { token: y.token });
  const rows = (listed.json as { kind: string; count: number }[]).filter((n) => n.kind === 'messages.new');
  t.same(rows.map((n) => n.count), [UPDATES + 1], 'one row, counting every message');

  const admin = postgres(url!, { max: 1, onnotice: () => {} });
  t.teardown(() => admin.end());
  await admin`create extension if not exists pageinspect`;
  // How many rows each index covers (y also has its "added to the conversation" row).
  const [covered] = await admin<{ all: number; unread_news: number; mentions: number }[]>`
    select count(*)::int4 as all, (count(*) filter (where not is_read and kind = 'messages.new'))::int4 as unread_news,
           (count(*) filter (where kind = 'mention'))::int4 as mentions from notifications`;
  const expected: Record<string, number> = {
    notifications_pkey: covered!.all,
    notifications_user_idx: covered!.all,
    notifications_one_unread_key: covered!.unread_news,
    notifications_mention_key: covered!.mentions,
  };
  const indexes = await admin<{ name: string }[]>`
    select c.relname as name from pg_index i join pg_class c on c.oid = i.indexrelid
     where i.indrelid = 'notifications'::regclass order by 1`;
  t.same(indexes.map((i) => i.name).sort(), Object.keys(expected).sort(), 'every index of the table is checked');
  for (const { name } of indexes) {
    // Page 0 is the metapage; a few entries fit on the first leaf, page 1 (not there while empty).
    const [{ pages } = { pages: 0 }] = await admin<{ pages: number }[]>`select (pg_relation_size(${name}::regclass) / current_setting('block_size')::int)::int4 as pages`;
    t.ok(pages <= 2, `${name}: one leaf at most`);
    const [{ entries } = { entries: -1 }] = pages < 2 ? [{ entries: 0 }] : await admin<{ entries: number }[]>`select count(*)::int4 as entries from bt_page_items(${name}, 1)`;
    t.equal(entries, expected[name], `${name}: one entry per row, however often it was rewritten`);
  }
});
