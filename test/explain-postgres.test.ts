/**
 * The list queries stay on indexes at scale: a database with a million messages (and a
 * million event records, 200k users, 100k memberships), analysed, and the SQL the service
 * really sends (recorded while the app serves requests) explained, both with its values and,
 * for reads, as the generic plan of a prepared statement. No plan may read messages,
 * participants, users or conversation_events with a sequential scan.
 */
import postgres from 'postgres';
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { readEvents } from '../src/messages/event-log.js';
import { buildTestApp } from './helpers/app.js';
import { call } from './helpers/api.js';
import { freshPostgresDatabase, recordingPostgres, type RecordedQuery } from './helpers/database.js';
import { executeCall } from './helpers/explain.js';

const USERS = 200_000;
const CONVERSATIONS = 20_000;
const MEMBERS = 5;
const MESSAGES = 1_000_000;
/** Conversations user 1 belongs to (besides the generated members). */
const OWN_CONVERSATIONS = 300;
const WATCHED = new Set(['messages', 'participants', 'users', 'conversation_events']);

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
  [key: string]: unknown;
}

/** `Limit(Nested Loop(Index Scan messages_conversation_id_idx, …))`, for the log. */
function outline(node: PlanNode): string {
  const scan = node['Index Name'] ?? node['Relation Name'];
  const children = (node.Plans ?? []).map(outline);
  const direction = node['Scan Direction'] === 'Backward' ? ' Backward' : '';
  return `${node['Node Type']}${direction}${scan ? ` ${String(scan)}` : ''}${children.length ? `(${children.join(', ')})` : ''}`;
}

function seqScans(node: PlanNode, found: string[] = []): string[] {
  if (node['Node Type'] === 'Seq Scan' && node['Relation Name'] && WATCHED.has(node['Relation Name'])) {
    found.push(node['Relation Name']);
  }
  for (const child of node.Plans ?? []) seqScans(child, found);
  return found;
}

t.test('no sequential scans on the hot tables', async (t) => {
  const url = await freshPostgresDatabase(t, 'explain');
  const { database, queries } = recordingPostgres(url);
  t.teardown(() => database.close());
  await database.migrate();

  const admin = postgres(url, { max: 1, onnotice: () => {} });
  t.teardown(() => admin.end({ timeout: 5 }));
  const started = Date.now();
  const step = async (statement: string) => {
    const t0 = Date.now();
    await admin.unsafe(statement);
    t.comment(`${Date.now() - t0} ms: ${statement.slice(0, 60).replace(/\s+/g, ' ')}`);
  };
  await admin.unsafe(`set synchronous_commit = off`);
  // Generated rows are consistent by construction: skip the per-row foreign-key triggers.
  await admin.unsafe(`set session_replication_role = replica`);
  // Usernames spread over the alphabet of hex digits, as real names spread over letters.
  await step(`insert into users (username, password_hash)
    select substr(md5(i::text), 1, 8) || i, 'scrypt$x' from generate_series(1, ${USERS}) i`);
  // Conversation c: members 10c-4 .. 10c (the creator is 10c); user 1 joins the first few.
  await step(`insert into conversations (created_by_id, created_at)
    select (10 * i - 1) % ${USERS} + 1, now() - (${CONVERSATIONS} - i) * interval '1 minute'
      from generate_series(1, ${CONVERSATIONS}) i`);
  await step(`insert into participants (conversation_id, user_id)
    select c, (10 * c - k - 1) % ${USERS} + 1 from generate_series(1, ${CONVERSATIONS}) c, generate_series(0, ${MEMBERS - 1}) k`);
  await step(`insert into participants (conversation_id, user_id)
    select c, 1 from generate_series(1, ${OWN_CONVERSATIONS}) c on conflict do nothing`);
  // A quarter of all messages in conversation 1 (a busy group), the rest spread thinly.
  await step(`insert into messages (conversation_id, sender_id, content, seq)
    select case when i % 4 = 0 then 1 else i % (${CONVERSATIONS} - 1) + 2 end,
           case when i % 4 = 0 then 1 else (10 * (i % (${CONVERSATIONS} - 1) + 2) - 1) % ${USERS} + 1 end,
           'message number ' || i, i
      from generate_series(1, ${MESSAGES}) i`);
  await step(`insert into conversation_events (conversation_id, seq, kind, message_id)
    select conversation_id, seq, 1, id from messages`);
  await step(`update conversations c set last_seq = s.last_seq, last_message_at = now() - (c.id % 500) * interval '1 second'
    from (select conversation_id, max(seq) as last_seq from messages group by conversation_id) s
   where s.conversation_id = c.id`);
  await step(`analyze`);
  t.comment(`filled in ${Date.now() - started} ms`);

  const [{ count } = { count: '0' }] = await admin.unsafe<{ count: string }[]>(`select count(*) from messages`);
  t.equal(Number(count), MESSAGES, 'a million messages');
  const [{ username } = { username: '' }] = await admin.unsafe<{ username: string }[]>(`select username from users where id = 1`);
  const [middle] = await admin.unsafe<{ id: string }[]>(
    `select id from messages where conversation_id = 1 order by id offset ${MESSAGES / 8} limit 1`,
  );
  const mid = Number(middle?.id);

  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  const token = app.signToken({ id: 1, username });

  const requests: [string, string][] = [
    ['conversation list', '/api/conversations/'],
    ['one conversation', '/api/conversations/1/'],
    ['message page, default (busy conversation)', '/api/conversations/1/messages/'],
    ['message page, before', `/api/conversations/1/messages/?before=${mid}&limit=50`],
    ['message page, after', `/api/conversations/1/messages/?after=${mid}&limit=50`],
    ['message page, between', `/api/conversations/1/messages/?after=${mid - 1000}&before=${mid}`],
    ['message page, default (quiet conversation)', '/api/conversations/2/messages/'],
    ['message page, before (quiet conversation)', `/api/conversations/2/messages/?before=${mid}`],
    ['user search, two characters', `/api/users/?search=${username.slice(0, 2)}`],
    ['user search, one character', `/api/users/?search=${username.slice(0, 1)}`],
    ['user search, no prefix', '/api/users/'],
    ['user search, exact', `/api/users/?search=${username}`],
  ];
  const explained: { label: string; query: RecordedQuery }[] = [];
  for (const [label, path] of requests) {
    const from = queries.length;
    const response = await call(app, 'GET', path, { token });
    t.equal(response.status, 200, `${label}: ${path}`);
    for (const query of queries.slice(from)) explained.push({ label, query });
  }
  const from = queries.length;
  const sent = await call(app, 'POST', '/api/conversations/2/messages/', { token, body: { content: 'write path', client_id: 'explain-1' } });
  t.equal(sent.status, 201);
  const retried = await call(app, 'POST', '/api/conversations/2/messages/', { token, body: { content: 'write path', client_id: 'explain-1' } });
  t.equal(retried.status, 200, 'a retried client_id finds the first message');
  t.equal((await call(app, 'PATCH', `/api/conversations/2/messages/${sent.json.id}/`, { token, body: { content: 'edited' } })).status, 200);
  t.equal((await call(app, 'DELETE', `/api/conversations/2/messages/${sent.json.id}/`, { token })).status, 204);
  for (const query of queries.slice(from)) explained.push({ label: 'send/edit/delete', query });
  const replayFrom = queries.length;
  const replay = await readEvents(database, app.links, 1, mid, 100);
  t.equal(replay.length, 100, 'event replay');
  for (const query of queries.slice(replayFrom)) explained.push({ label: 'event replay (resume)', query });

  const statements = explained.filter(({ query }) => /^\s*(select|with|update|insert|delete)\b/i.test(query.sql));
  t.ok(statements.length >= requests.length, `${statements.length} statements recorded`);
  const seen = new Set<string>();
  const check = (label: string, plan: PlanNode | undefined, query: RecordedQuery) => {
    if (!plan) return void t.fail(`${label}: no plan`);
    const scans = seqScans(plan);
    t.comment(`${label}: ${outline(plan)}`);
    t.same(scans, [], `${label}: no Seq Scan on ${[...WATCHED].join('/')}`, {
      sql: query.sql.replace(/\s+/g, ' ').slice(0, 400),
      ...(scans.length ? { plan: JSON.stringify(plan, null, 1) } : {}),
    });
  };
  type Explained = { 'QUERY PLAN': { Plan: PlanNode }[] }[];
  let prepared = 0;
  for (const { label, query } of statements) {
    const key = `${query.sql}\u0000${JSON.stringify(query.params)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const params = query.params as postgres.ParameterOrJSON<never>[];
    // The plan for these values (what the first executions of a prepared statement get)…
    const custom = await admin.unsafe<Explained>(`explain (format json) ${query.sql}`, params);
    check(label, custom[0]?.['QUERY PLAN'][0]?.Plan, query);
    // …and, for reads, the generic plan PostgreSQL may settle on for a prepared statement
    // (the service prepares its statements) after a few executions.
    if (!/^\s*select\b/i.test(query.sql)) continue;
    const name = `explained_${++prepared}`;
    await admin.unsafe(`prepare ${name} as ${query.sql}`);
    await admin.unsafe(`set plan_cache_mode = force_generic_plan`);
    const generic = await admin.unsafe<Explained>(`explain (format json) ${executeCall(name, query.params)}`);
    await admin.unsafe(`reset plan_cache_mode`);
    check(`${label} (generic plan)`, generic[0]?.['QUERY PLAN'][0]?.Plan, query);
  }
  t.comment(`done in ${Date.now() - started} ms`);
});
