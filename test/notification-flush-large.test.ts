/**
 * Past NOTIFY_MAX_MEMBERS a new message notifies only the members it mentions
 * (src/notifications/batcher.ts). The flush must find that out from the conversation's row,
 * before it reads any member: in a 1,000-member conversation the upsert's plan read every
 * member's row and dropped each one afterwards, 4 ms of PostgreSQL per flush at one message
 * a flush (the 1,000-member fan-out benchmark), and the inbox order read them all to move
 * none (every membership of a large conversation is flagged `large`). The recorded upsert
 * and inbox order are run again under EXPLAIN ANALYZE, with the generic plan and settings
 * of their connections, on tables never analysed (as a connection's first flush plans them
 * on a young database), and their reads of `participants` are counted.
 */
import type postgres from 'postgres';
import t from 'tap';
import { INBOX_TRACKED_MEMBERS } from '../src/conversations/inbox-order.js';
import { PLANNED_SETTINGS } from '../src/db/client.js';
import { NotificationBatcher, NOTIFY_MAX_MEMBERS, type FlushedRow } from '../src/notifications/batcher.js';
import type { RecordedQuery } from './helpers/database.js';
import { executeCall, explainDatabase, type PlanNode } from './helpers/explain.js';

const silent = { warn() {}, error() {}, info() {} } as never;
const LARGE_MEMBERS = 300;

/** Rows `participants` scans read (returned or filtered out), over all their loops. */
function participantRowsRead(node: PlanNode): number {
  const perLoop = Number(node['Actual Rows'] ?? 0) + Number(node['Rows Removed by Filter'] ?? 0);
  const own = node['Relation Name'] === 'participants' ? perLoop * Number(node['Actual Loops'] ?? 0) : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + participantRowsRead(child), 0);
}

/** The plan of `query` as its connections run it (generic, PLANNED_SETTINGS), executed and rolled back. */
async function analysed(admin: postgres.Sql, query: RecordedQuery): Promise<PlanNode> {
  await admin.unsafe('begin');
  await admin.unsafe(`set local plan_cache_mode = force_generic_plan`);
  for (const [key, value] of Object.entries(PLANNED_SETTINGS)) await admin.unsafe(`set local ${key} = '${value}'`);
  await admin.unsafe(`prepare analysed as ${query.sql}`);
  const explained = await admin.unsafe<{ 'QUERY PLAN': { Plan: PlanNode }[] }[]>(`explain (analyze, format json) ${executeCall('analysed', query.params)}`);
  await admin.unsafe('rollback');
  await admin.unsafe('deallocate analysed');
  return explained[0]!['QUERY PLAN'][0]!.Plan;
}

/** A conversation of `members` (the first one its sender) with one message, its memberships flagged as the service flags them. */
async function seedConversation(admin: postgres.Sql, members: number[]): Promise<{ id: number; messageId: number }> {
  const [conversation] = await admin<{ id: number }[]>`
    insert into conversations (created_by_id, member_count, last_seq, message_count) values (${members[0]!}, ${members.length}, 1, 1) returning id`;
  const id = conversation!.id;
  await admin`insert into participants (conversation_id, user_id, large, activity_at)
    select ${id}, unnest(${members}::int4[]), ${members.length > INBOX_TRACKED_MEMBERS}, now() - interval '1 hour'`;
  await admin`update participants set last_read_seq = 1, read_count = 1 where conversation_id = ${id} and user_id = ${members[0]!}`;
  const [message] = await admin<{ id: number }[]>`
    insert into messages (conversation_id, sender_id, content, seq) values (${id}, ${members[0]!}, 'hello', 1) returning id`;
  return { id, messageId: Number(message!.id) };
}

t.test('a flush reads no member of a conversation past NOTIFY_MAX_MEMBERS', async (t) => {
  t.ok(LARGE_MEMBERS > NOTIFY_MAX_MEMBERS && LARGE_MEMBERS > INBOX_TRACKED_MEMBERS, 'the large conversation is past both limits');
  const { database, queries, admin } = await explainDatabase(t, 'flush_large');
  const users = await admin<{ id: number }[]>`
    insert into users (username, password_hash) select 'member' || g, 'scrypt$x' from generate_series(1, ${LARGE_MEMBERS}) g returning id`;
  const ids = users.map((user) => user.id);
  const large = await seedConversation(admin, ids);
  const small = await seedConversation(admin, ids.slice(0, 3));

  const delivered: FlushedRow[] = [];
  const batcher = new NotificationBatcher(database, (rows) => delivered.push(...rows), silent);
  batcher.add(large.id, ids[0]!, 'member1', large.messageId);
  batcher.add(small.id, ids[0]!, 'member1', small.messageId);
  await batcher.flush();

  const notified = await admin<{ user_id: number; conversation_id: number }[]>`
    select user_id, conversation_id from notifications order by conversation_id, user_id`;
  t.same(
    notified.map((row) => [row.conversation_id, row.user_id]),
    [[small.id, ids[1]!], [small.id, ids[2]!]],
    'the small conversation\'s other members are notified, nobody of the large one',
  );
  t.equal(delivered.length, 2, 'two notifications pushed');

  // Again, each on the state before the flush, inside a transaction that is rolled back.
  await admin`delete from notifications`;
  await admin`update participants set activity_at = now() - interval '1 hour'`;
  for (const [what, pattern] of [['the upsert', /insert into notifications as n/], ['the inbox order', /update participants p set activity_at/]] as const) {
    const recorded = queries.find((query) => query.indexOnly && pattern.test(query.sql));
    if (!recorded) throw new Error(`${what} was not recorded`);
    const read = participantRowsRead(await analysed(admin, recorded));
    t.ok(read > 0, `${what}: the small conversation's members are read (${read} rows)`);
    // At most twice each of the small conversation's three (the inbox order locks, then updates).
    t.ok(read <= 6, `${what}: no member of the large conversation is read: ${read} participant rows for 3 + ${LARGE_MEMBERS} members`);
  }
});
