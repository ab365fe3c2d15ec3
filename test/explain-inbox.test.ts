/**
 * The inbox's statements stay on indexes when the planner has a choice (INBOX.md: "EXPLAIN
 * tests show index use for the list, the unread counts and the member checks"): a database
 * with 100,000 conversations, 500,000 memberships, 400,000 messages (some deleted) and their
 * event records, 300,000 notifications, analysed; user 1 is in 2,000 conversations, one of them
 * with 300 members. The SQL the service really sends
 * for the list (first page and after a cursor), one conversation, and a read marker is
 * explained with its values and, for reads, as a prepared statement's generic plan: no
 * sequential scan on the hot tables, and the indexes the design relies on appear.
 */
import postgres from 'postgres';
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { buildTestApp } from './helpers/app.js';
import { call } from './helpers/api.js';
import { executeCall, explainDatabase, indexesOf, outline, type PlanNode, seqScans } from './helpers/explain.js';
import { nextLink } from './helpers/rest-context.js';

const USERS = 50_000;
const CONVERSATIONS = 100_000;
const MEMBERS = 5;
const MESSAGES = 400_000;
const OWN_CONVERSATIONS = 2_000;
/** One of user 1's conversations, made big. */
const BIG = (CONVERSATIONS / OWN_CONVERSATIONS) * 7;
const WATCHED = new Set(['messages', 'participants', 'users', 'conversation_events', 'conversations', 'notifications']);



t.test('the inbox statements use their indexes', async (t) => {
  const { database, queries, admin } = await explainDatabase(t, 'explain_inbox');
  await admin.unsafe(`insert into users (username, password_hash) select 'u' || i, 'scrypt$x' from generate_series(1, ${USERS}) i`);
  await admin.unsafe(`insert into conversations (created_by_id, created_at, member_count)
    select (5 * i) % ${USERS} + 1, now() - (${CONVERSATIONS} - i) * interval '1 minute', ${MEMBERS} from generate_series(1, ${CONVERSATIONS}) i`);
  await admin.unsafe(`insert into participants (conversation_id, user_id, joined_at)
    select c, (5 * c + k) % ${USERS} + 1, now() - interval '1 day' + k * interval '1 second'
      from generate_series(1, ${CONVERSATIONS}) c, generate_series(0, ${MEMBERS - 1}) k`);
  await admin.unsafe(`insert into participants (conversation_id, user_id)
    select c * ${CONVERSATIONS / OWN_CONVERSATIONS}, 1 from generate_series(1, ${OWN_CONVERSATIONS}) c on conflict do nothing`);
  // Messages spread over every conversation; seq = the message's rank in its conversation.
  await admin.unsafe(`insert into messages (conversation_id, sender_id, content, seq, is_deleted)
    select i % ${CONVERSATIONS} + 1, (5 * (i % ${CONVERSATIONS} + 1)) % ${USERS} + 1, 'message ' || i, i / ${CONVERSATIONS} + 1, i % 97 = 0
      from generate_series(0, ${MESSAGES - 1}) i`);
  await admin.unsafe(`insert into conversation_events (conversation_id, seq, kind, message_id, message_count)
    select conversation_id, seq, 1, id, seq from messages`);
  await admin.unsafe(`update conversations c set last_seq = s.n, message_count = s.n, last_message_at = now() - (c.id % 700) * interval '1 second'
    from (select conversation_id, count(*) as n from messages group by conversation_id) s where s.conversation_id = c.id`);
  await admin.unsafe(`update participants set last_read_seq = 1, read_count = 1 where user_id = 1`);
  // One big group of user 1's: its names come from participants_joined_idx, not a sort.
  await admin.unsafe(`insert into participants (conversation_id, user_id, joined_at)
    select ${BIG}, 1000 + i, now() - interval '2 days' + i * interval '1 second' from generate_series(1, 300) i on conflict do nothing`);
  await admin.unsafe(`update conversations set member_count = (select count(*) from participants where conversation_id = ${BIG}) where id = ${BIG}`);
  // As the service keeps them (conversations/inbox-order.ts): tracked memberships at their
  // conversation's activity, the big group's flagged large and read live.
  await admin.unsafe(`update participants p set activity_at = coalesce(c.last_message_at, c.created_at), large = c.member_count > 100
    from conversations c where c.id = p.conversation_id`);
  await admin.unsafe(`insert into notifications (user_id, kind, conversation_id, text, is_read)
    select i % ${USERS} + 1, 'messages.new', i % ${CONVERSATIONS} + 1, 'New message', i % 10 <> 0 from generate_series(1, 300000) i
    on conflict do nothing`);
  await admin.unsafe(`analyze`);

  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  const token = app.signToken({ id: 1, username: 'u1' });
  const explained: { label: string; sql: string; params: unknown[] }[] = [];
  const record = async (label: string, run: () => Promise<{ status: number }>) => {
    const from = queries.length;
    const response = await run();
    t.equal(response.status, 200, label);
    for (const query of queries.slice(from)) {
      if (/^\s*(select|with|update|insert)\b/i.test(query.sql)) explained.push({ label, sql: query.sql, params: query.params as unknown[] });
    }
  };
  let firstPage: Awaited<ReturnType<typeof call>> | undefined;
  await record('list, first page of 50', async () => (firstPage = await call(app, 'GET', '/api/conversations/?limit=50', { token })));
  t.equal(firstPage!.json.length, 50);
  const next = nextLink(firstPage!);
  t.ok(next, 'a next page');
  await record('list, after a cursor', () => call(app, 'GET', next!, { token }));
  const conversationId = BIG;
  t.ok(firstPage!.json[0].unread_count > 0, 'unread messages');
  await record('one conversation', () => call(app, 'GET', `/api/conversations/${conversationId}/`, { token }));
  await record('read marker', () => call(app, 'POST', `/api/conversations/${conversationId}/read/`, { token, body: { seq: 10 } }));

  type Explained = { 'QUERY PLAN': { Plan: PlanNode }[] }[];
  // Alternatives: participants_pkey and participants_inbox_idx both find one member's row;
  // small groups' names may come from either index on conversation_id (five rows to sort).
  const MEMBER_ROW = ['participants_pkey', 'participants_inbox_idx'];
  const NAMES = ['participants_joined_idx', 'participants_pkey'];
  const expectedIndexes: Record<string, string[][]> = {
    'list, first page of 50': [['participants_inbox_idx'], ['participants_large_idx'], NAMES, ['messages_conversation_id_idx'], ['messages_deleted_idx']],
    'list, after a cursor': [['participants_inbox_idx'], ['participants_large_idx'], NAMES, ['messages_conversation_id_idx'], ['messages_deleted_idx']],
    'one conversation': [MEMBER_ROW, ['participants_joined_idx'], ['messages_conversation_id_idx'], ['messages_deleted_idx']],
    'read marker': [MEMBER_ROW, ['conversation_events_pkey'], ['messages_deleted_idx'], ['notifications_one_unread_key']],
  };
  /** The statements these expectations are about (the auth lookups beside them are not). */
  const inboxStatement = /^\s*with (page|me) as/i;
  let prepared = 0;
  for (const { label, sql, params } of explained) {
    const plans: [string, PlanNode | undefined][] = [];
    const custom = await admin.unsafe<Explained>(`explain (format json) ${sql}`, params as postgres.ParameterOrJSON<never>[]);
    plans.push([label, custom[0]?.['QUERY PLAN'][0]?.Plan]);
    if (/^\s*(select|with page)\b/i.test(sql)) {
      const name = `explained_${++prepared}`;
      await admin.unsafe(`prepare ${name} as ${sql}`);
      await admin.unsafe(`set plan_cache_mode = force_generic_plan`);
      const generic = await admin.unsafe<Explained>(`explain (format json) ${executeCall(name, params)}`);
      await admin.unsafe(`reset plan_cache_mode`);
      plans.push([`${label} (generic plan)`, generic[0]?.['QUERY PLAN'][0]?.Plan]);
    }
    for (const [name, plan] of plans) {
      if (!plan) {
        t.fail(`${name}: no plan`);
        continue;
      }
      t.comment(`${name}: ${outline(plan)}`);
      const scans = seqScans(plan, WATCHED);
      t.same(scans, [], `${name}: no Seq Scan on the hot tables`, scans.length ? { sql: sql.slice(0, 300) } : {});
      const used = indexesOf(plan);
      if (!inboxStatement.test(sql)) continue;
      for (const choices of expectedIndexes[label] ?? []) {
        t.ok(choices.some((index) => used.has(index)), `${name}: uses ${choices.join(' or ')}`, { used: [...used] });
      }
    }
  }
});
