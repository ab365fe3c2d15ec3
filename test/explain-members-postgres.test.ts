/**
 * Membership statements stay on indexes at scale: the member checks (the chat socket's join,
 * the write path's lock, the history's check), the members list (first and later pages) and
 * every membership change, recorded while the app serves them, explained on an analysed
 * database with 100k users, 20k conversations and a group of 20k members.
 */
import postgres from 'postgres';
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { memberPosition } from '../src/conversations/membership.js';
import { buildTestApp } from './helpers/app.js';
import { call } from './helpers/api.js';
import type { RecordedQuery } from './helpers/database.js';
import { expectIndexedPlans, explainDatabase, indexesOf, plansOf } from './helpers/explain.js';

const USERS = 100_000;
const CONVERSATIONS = 20_000;
const MEMBERS = 5;
/** Conversation 1: a big group, user 1 its owner. */
const BIG = 20_000;
/** Messages stay empty here (their statements are test/explain-postgres.test.ts's). */
const WATCHED = new Set(['participants', 'users', 'conversation_events', 'conversations']);

t.test('member checks and the members list use indexes', async (t) => {
  const { database, queries, admin } = await explainDatabase(t, 'explain_members');
  await admin.unsafe(`insert into users (username, password_hash) select 'm' || substr(md5(i::text), 1, 8) || i, 'scrypt$x' from generate_series(1, ${USERS}) i`);
  await admin.unsafe(`insert into conversations (created_by_id, member_count, last_seq) select (10 * i - 1) % ${USERS} + 1, ${MEMBERS}, 10 from generate_series(1, ${CONVERSATIONS}) i`);
  await admin.unsafe(`insert into participants (conversation_id, user_id, joined_at)
    select c, (10 * c - k - 1) % ${USERS} + 1, now() - k * interval '1 minute' from generate_series(2, ${CONVERSATIONS}) c, generate_series(0, ${MEMBERS - 1}) k`);
  await admin.unsafe(`insert into participants (conversation_id, user_id, role, joined_at)
    select 1, u, case when u = 1 then 'owner' when u % 100 = 0 then 'admin' else 'member' end, now() - (${BIG} - u) * interval '1 second'
      from generate_series(1, ${BIG}) u`);
  await admin.unsafe(`update conversations set member_count = ${BIG}, created_by_id = 1 where id = 1`);
  await admin.unsafe(`insert into conversation_events (conversation_id, seq, kind, payload)
    select c, s, 8, '{}' from generate_series(1, ${CONVERSATIONS}) c, generate_series(1, 10) s`);
  await admin.unsafe(`analyze`);
  const [{ username } = { username: '' }] = await admin.unsafe<{ username: string }[]>(`select username from users where id = 1`);

  const app = await buildTestApp(t, { database, bus: createMemoryBus(), env: { MAX_PARTICIPANTS: '100000' } });
  const token = app.signToken({ id: 1, username });
  const recorded: { label: string; query: RecordedQuery }[] = [];
  const record = async (label: string, run: () => Promise<unknown>) => {
    const from = queries.length;
    await run();
    for (const query of queries.slice(from)) {
      if (/^\s*(select|with|update|insert|delete)\b/i.test(query.sql)) recorded.push({ label, query });
    }
  };
  const ok = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, status: number, body?: unknown) => {
    const response = await call(app, method, path, { token, ...(body === undefined ? {} : { body }) });
    t.equal(response.status, status, `${method} ${path}: ${response.body.slice(0, 200)}`);
  };

  await record('members list, first page', () => ok('GET', '/api/conversations/1/members/', 200));
  await record('members list, a later page', () => ok('GET', `/api/conversations/1/members/?after=${BIG / 2}&limit=1000`, 200));
  await record('chat socket join: membership and seq', async () => t.equal(await memberPosition(database, 1, 1), 10));
  await record('history member check', () => ok('GET', '/api/conversations/1/messages/?limit=10', 200));
  await record('add a member', () => ok('POST', '/api/conversations/1/members/', 200, { participants: [BIG + 1] }));
  await record('change a role', () => ok('PATCH', '/api/conversations/1/members/2/', 200, { role: 'admin' }));
  await record('rename', () => ok('PATCH', '/api/conversations/1/', 200, { title: 'Big group' }));
  await record('remove a member', () => ok('DELETE', `/api/conversations/1/members/${BIG + 1}/`, 204));
  await record('the owner leaves (succession)', () => ok('DELETE', '/api/conversations/1/members/1/', 204));
  t.ok(recorded.length >= 12, `${recorded.length} statements recorded`);

  await expectIndexedPlans(t, admin, recorded, WATCHED);

  const [list] = recorded.filter(({ label }) => label === 'members list, first page').map(({ query }) => query).filter((q) => /left join lateral/.test(q.sql));
  t.ok(list, 'the members list statement was recorded');
  for (const plan of await plansOf(admin, list!, 'members_list_pkey')) {
    t.ok(indexesOf(plan).has('participants_pkey'), 'the members list reads participants by its primary key (conversation, user id)');
  }
});
