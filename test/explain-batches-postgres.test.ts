/**
 * The batch statements (the send batch, the notification flush's) run with one generic plan per connection, made at its first
 * call (db/client.ts, `indexOnly` and PLANNED_SETTINGS): on a fresh database, tables empty
 * and never analysed, that plan must already be the one that serves millions of rows, every
 * table read through an index lookup (no sequential scan, no walk of a whole index). The
 * statement is the one the service really sent (recorded, with a mention, so the mention
 * lookup is in it), explained as a prepared statement's generic plan on the fresh database,
 * with and without those settings. The search indexer's statements run on the ordinary pool,
 * with PostgreSQL's own plan choices: their generic plans must be lookups by themselves.
 */
import type postgres from 'postgres';
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { PLANNED_SETTINGS } from '../src/db/client.js';
import { buildTestApp } from './helpers/app.js';
import { call } from './helpers/api.js';
import type { RecordedQuery } from './helpers/database.js';
import { executeCall, explainDatabase, outline, type PlanNode } from './helpers/explain.js';

const WATCHED = new Set(['messages', 'participants', 'users', 'conversation_events', 'conversations', 'notifications', 'message_words']);

type Explained = { 'QUERY PLAN': { Plan: PlanNode }[] }[];

/** Each index's first column (none for an expression), read from the catalog by `leadingColumns`. */
let leading = new Map<string, string | null>();

async function leadingColumns(admin: postgres.Sql): Promise<Map<string, string | null>> {
  const rows = await admin<{ name: string; column: string | null }[]>`
    select c.relname as name, a.attname as column from pg_index i
      join pg_class c on c.oid = i.indexrelid
      left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0] and i.indkey[0] <> 0`;
  return new Map(rows.map((row) => [row.name, row.column]));
}

/**
 * Reads of a watched table that are not lookups: sequential scans, and index scans with no
 * condition on the index's first column (a walk of the whole index, filtered as it goes).
 */
function fullReads(node: PlanNode, found: string[] = []): string[] {
  const relation = node['Relation Name'] ?? '';
  const index = node['Index Name'];
  if (node['Node Type'] === 'Seq Scan' && WATCHED.has(relation)) found.push(relation);
  if (index && /^(messages|participants|users|conversation_events|conversations|notifications|message_words)_/.test(index)) {
    const condition = String(node['Index Cond'] ?? '');
    const first = leading.get(index);
    if (!condition || (first && !new RegExp(`\\b${first}\\b`).test(condition))) found.push(index);
  }
  for (const child of node.Plans ?? []) fullReads(child, found);
  return found;
}

/** The generic plan of `query` as a prepared statement, under `settings`. */
async function genericPlan(admin: postgres.Sql, query: RecordedQuery, name: string, settings: Readonly<Record<string, string>>): Promise<PlanNode> {
  await admin.unsafe(`set plan_cache_mode = force_generic_plan`);
  for (const [key, value] of Object.entries(settings)) await admin.unsafe(`set ${key} = '${value}'`);
  await admin.unsafe(`prepare ${name} as ${query.sql}`);
  const explained = await admin.unsafe<Explained>(`explain (format json) ${executeCall(name, query.params)}`);
  await admin.unsafe(`deallocate ${name}`);
  await admin.unsafe(`reset all`);
  return explained[0]!['QUERY PLAN'][0]!.Plan;
}

t.test('the send batch is planned for index lookups on a fresh database', async (t) => {
  const { database, queries, admin } = await explainDatabase(t, 'explain_batches');
  leading = await leadingColumns(admin);
  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  const users = await admin.unsafe<{ id: number; username: string }[]>(
    `insert into users (username, password_hash) values ('alice', 'scrypt$x'), ('bob', 'scrypt$x'), ('carol', 'scrypt$x') returning id, username`,
  );
  const [alice] = users.map((user) => ({ ...user, token: app.signToken(user) }));
  const created = await call(app, 'POST', '/api/conversations/', { token: alice!.token, body: { participants: users.slice(1).map((u) => u.id) } });
  t.equal(created.status, 201, 'conversation created');
  const conversationId = (created.json as { id: number }).id;
  const sent = await call(app, 'POST', `/api/conversations/${conversationId}/messages/`, {
    token: alice!.token,
    body: { content: 'hello @bob, see you at the station', client_id: 'c-1' },
  });
  t.equal(sent.status, 201, 'message sent');
  t.same((sent.json as { mentions: string[] }).mentions, ['bob'], 'the mention was found');
  // Closing writes the gathered notifications: the flush's statements are batch statements too.
  await app.close();

  const batches = new Map<string, RecordedQuery>();
  for (const query of queries) if (query.indexOnly && !batches.has(query.sql)) batches.set(query.sql, query);
  t.ok(batches.size >= 1, 'the send batch was recorded');
  for (const [what, pattern] of [['the senders\' read', /update notifications n set is_read/], ['the upsert', /insert into notifications as n/], ['the inbox order', /update participants p set activity_at/]] as const) {
    t.ok([...batches.keys()].some((text) => pattern.test(text)), `the notification flush's ${what} was recorded`);
  }

  let n = 0;
  const unguarded: string[] = [];
  for (const query of batches.values()) {
    const label = query.sql.replace(/\s+/g, ' ').trim().slice(0, 40);
    const plan = await genericPlan(admin, query, `batch_${++n}`, PLANNED_SETTINGS);
    t.comment(`${label}: ${outline(plan)}`);
    t.same(fullReads(plan), [], `${label}: index lookups only`);
    unguarded.push(...fullReads(await genericPlan(admin, query, `unguarded_${n}`, {})));
  }
  // Why the settings exist: costed on empty tables, PostgreSQL's own generic plans read them whole.
  t.ok(unguarded.length > 0, `without PLANNED_SETTINGS the generic plans scan ${unguarded.join(', ')}`);

  // Autovacuum's ANALYZE invalidates the cached plans; they are made again on the statistics
  // of small tables (a young deployment, the bench's 100 conversations), where walking a whole
  // index can be costed below looking rows up. The plans must still be lookups.
  await admin.unsafe(`insert into users (username, password_hash) select 'user' || g, 'scrypt$x' from generate_series(1, 300) g`);
  await admin.unsafe(`insert into conversations (created_by_id, member_count) select ${alice!.id}, 3 from generate_series(1, 100)`);
  await admin.unsafe(`insert into participants (conversation_id, user_id) select c.id, u.id from conversations c join users u on u.id % 100 = c.id % 100 on conflict do nothing`);
  await admin.unsafe(`insert into messages (conversation_id, sender_id, content, seq) select p.conversation_id, p.user_id, 'text', row_number() over () from participants p, generate_series(1, 5)`);
  await admin.unsafe(`insert into notifications (user_id, kind, conversation_id, message_id, text) select p.user_id, 'messages.new', p.conversation_id, 1, 'x' from participants p on conflict do nothing`);
  await admin.unsafe('analyze');
  for (const query of batches.values()) {
    const label = query.sql.replace(/\s+/g, ' ').trim().slice(0, 40);
    const plan = await genericPlan(admin, query, `analysed_${++n}`, PLANNED_SETTINGS);
    t.comment(`${label}, small tables analysed: ${outline(plan)}`);
    t.same(fullReads(plan), [], `${label}: index lookups only on small analysed tables`);
  }
});

t.test('the search indexer reads and writes by index lookups in its generic plans on a fresh database', async (t) => {
  const { database, queries, admin } = await explainDatabase(t, 'explain_indexer');
  leading = await leadingColumns(admin);
  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  const users = await admin.unsafe<{ id: number; username: string }[]>(
    `insert into users (username, password_hash) values ('alice', 'scrypt$x'), ('bob', 'scrypt$x') returning id, username`,
  );
  const token = app.signToken(users[0]!);
  const created = await call(app, 'POST', '/api/conversations/', { token, body: { participants: [users[1]!.id] } });
  t.equal(created.status, 201, 'conversation created');
  const conversationId = (created.json as { id: number }).id;
  const sent = await call(app, 'POST', `/api/conversations/${conversationId}/messages/`, { token, body: { content: 'words to index' } });
  t.equal(sent.status, 201, 'message sent');
  const from = queries.length;
  await app.searchIndex.drain();
  const statements = new Map<string, RecordedQuery>();
  // The indexer's own statements: a notification flush may run meanwhile, on the batch connections (checked above).
  for (const query of queries.slice(from)) if (!query.indexOnly && !statements.has(query.sql)) statements.set(query.sql, query);
  t.ok([...statements.keys()].some((text) => /conversation_events e/.test(text)), 'the indexer read the event log');
  t.ok([...statements.keys()].some((text) => /insert into message_words/.test(text)), 'the indexer wrote words');

  // The indexer's statements run on the ordinary pool (PostgreSQL's own plan choice): the
  // statements themselves must leave it only lookups.
  let n = 0;
  for (const query of statements.values()) {
    const label = query.sql.replace(/\s+/g, ' ').trim().slice(0, 50);
    const plan = await genericPlan(admin, query, `indexer_${++n}`, {});
    t.comment(`${label}: ${outline(plan)}`);
    t.same(fullReads(plan), [], `${label}: index lookups only`);
  }
});
