/**
 * inbox: the first inbox page and unread counts must not cost more as a user's conversations
 * and unread messages grow (INBOX.md, "Speed"). Seeds, straight into the workload's database
 * (2,000 conversations through the API would take minutes of rate limits and scrypt):
 * - `small`, a member of 20 conversations, and `big`, of 2,000, each with 3 unread messages
 *   from the third user; autocannon reads `GET /api/conversations/?limit=50` for each in
 *   turn, on both replicas at once, and the report gives big / small (goal >= 0.8);
 * - for a fourth user, one conversation with 100,000 messages after their marker and one with 10;
 *   `GET /api/conversations/{id}/` for each, and the ratio (goal ~1: no scans).
 * The rows are what the service itself would write: counters, event rows with their running
 * message_count, markers at 0.
 */
import postgres from 'postgres';
import { log } from '../lib/log.js';
import type { Options } from '../lib/options.js';
import { round } from '../lib/stats.js';
import { register, request } from '../load/api.js';
import { mean, measure, type Rate } from '../load/rates.js';
import { type StackContext, startStack } from '../stack/stack.js';

const SMALL_CONVERSATIONS = 20;
const BIG_CONVERSATIONS = 2_000;
const UNREAD_PER_CONVERSATION = 3;
const PAGE = 50;
const HUGE_UNREAD = 100_000;
const TINY_UNREAD = 10;


export interface InboxResult {
  duration_s: number;
  connections_per_replica: number;
  list_small: Rate & { conversations: number; page_size: number };
  list_big: Rate & { conversations: number; page_size: number };
  /** list_big / list_small request rates; goal >= 0.8. */
  list_ratio: number;
  unread_huge: Rate & { unread_count: number };
  unread_tiny: Rate & { unread_count: number };
  /** unread_huge / unread_tiny request rates; goal ~1. */
  unread_ratio: number;
}



/**
 * `count` conversations of `members` (creator first), each with `messages` messages from
 * `senderId` after everyone else's marker at 0. Returns their ids.
 */
async function seedConversations(sql: postgres.Sql, members: number[], senderId: number, count: number, messages: number): Promise<number[]> {
  const rows = await sql<{ id: number }[]>`
    insert into conversations (created_by_id, member_count, created_at)
    select ${senderId}, ${members.length}, now() - i * interval '1 second' from generate_series(1, ${count}) i returning id`;
  const ids = rows.map((r) => Number(r.id));
  const idList = `{${ids.join(',')}}`;
  await sql`insert into participants (conversation_id, user_id, role)
    select c, m, case when m = ${senderId} then 'owner' else 'member' end
      from unnest(${idList}::int4[]) c, unnest(${`{${members.join(',')}}`}::int4[]) m`;
  await sql`insert into messages (conversation_id, sender_id, content, seq, created_at)
    select c, ${senderId}, 'unread message ' || s, s, now() - interval '1 hour' + s * interval '1 millisecond'
      from unnest(${idList}::int4[]) c, generate_series(1, ${messages}) s`;
  await sql`insert into conversation_events (conversation_id, seq, kind, message_id, message_count)
    select conversation_id, seq, 1, id, seq from messages where conversation_id = any(${idList}::int4[])`;
  // Activity spread over the last hour, so the list's order is a real sort.
  await sql`update conversations set last_seq = ${messages}, message_count = ${messages},
    last_message_at = now() - (id % 3600) * interval '1 second' where id = any(${idList}::int4[])`;
  // Each membership's place in its member's inbox, as the notification flush keeps it.
  await sql`update participants p set activity_at = c.last_message_at from conversations c
    where c.id = p.conversation_id and p.conversation_id = any(${idList}::int4[])`;
  // The sender has read their own messages (sending moves the marker).
  await sql`update participants set last_read_seq = ${messages}, read_count = ${messages}
    where user_id = ${senderId} and conversation_id = any(${idList}::int4[])`;
  return ids;
}

export async function inboxWorkload(context: StackContext, options: Options): Promise<InboxResult> {
  const stack = await startStack(context, 'inbox');
  const sql = postgres(stack.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const url = stack.urls[0]!;
    const tag = Date.now().toString(36);
    const [small, big, sender, reader] = await Promise.all(['small', 'big', 'sender', 'reader'].map((name) => register(url, `inbox_${name}_${tag}`)));
    log(`inbox: seeding ${SMALL_CONVERSATIONS} + ${BIG_CONVERSATIONS} conversations, ${UNREAD_PER_CONVERSATION} unread each`);
    await seedConversations(sql, [sender!.id, small!.id], sender!.id, SMALL_CONVERSATIONS, UNREAD_PER_CONVERSATION);
    await seedConversations(sql, [sender!.id, big!.id], sender!.id, BIG_CONVERSATIONS, UNREAD_PER_CONVERSATION);
    log(`inbox: seeding conversations with ${HUGE_UNREAD} and ${TINY_UNREAD} unread messages`);
    const [huge] = await seedConversations(sql, [sender!.id, reader!.id], sender!.id, 1, HUGE_UNREAD);
    const [tiny] = await seedConversations(sql, [sender!.id, reader!.id], sender!.id, 1, TINY_UNREAD);
    await sql`analyze`;

    const listPath = `/api/conversations/?limit=${PAGE}`;
    const smallPage = (await request(url, 'GET', listPath, { token: small!.token })) as unknown[];
    const bigPage = (await request(url, 'GET', listPath, { token: big!.token })) as { unread_count: number }[];
    if (bigPage.length !== PAGE || bigPage.some((c) => c.unread_count !== UNREAD_PER_CONVERSATION)) {
      throw new Error('inbox: the big user’s first page is not 50 conversations with 3 unread each');
    }
    const hugeView = (await request(url, 'GET', `/api/conversations/${huge}/`, { token: reader!.token })) as { unread_count: number };
    const tinyView = (await request(url, 'GET', `/api/conversations/${tiny}/`, { token: reader!.token })) as { unread_count: number };
    if (hugeView.unread_count !== HUGE_UNREAD || tinyView.unread_count !== TINY_UNREAD) throw new Error('inbox: unexpected unread counts');

    log(`inbox: ${options.connections} connections per replica, ${options.durationS} s per measurement`);
    // A B B A: whichever runs first also warms the replicas up, so each pair is measured in
    // both orders and averaged (a ratio from one ordering mostly measures the warm-up).
    const pair = async (pathA: string, tokenA: string, pathB: string, tokenB: string): Promise<[Rate, Rate]> => {
      const a1 = await measure(stack.urls, pathA, tokenA, options);
      const b1 = await measure(stack.urls, pathB, tokenB, options);
      const b2 = await measure(stack.urls, pathB, tokenB, options);
      const a2 = await measure(stack.urls, pathA, tokenA, options);
      return [mean(a1, a2), mean(b1, b2)];
    };
    const [listSmall, listBig] = await pair(listPath, small!.token, listPath, big!.token);
    const [unreadTiny, unreadHuge] = await pair(`/api/conversations/${tiny}/`, reader!.token, `/api/conversations/${huge}/`, reader!.token);
    const ratio = (a: Rate, b: Rate) => round(b.req_per_s > 0 ? a.req_per_s / b.req_per_s : 0, 3) ?? 0;
    return {
      duration_s: options.durationS,
      connections_per_replica: options.connections,
      list_small: { ...listSmall, conversations: SMALL_CONVERSATIONS, page_size: smallPage.length },
      list_big: { ...listBig, conversations: BIG_CONVERSATIONS, page_size: bigPage.length },
      list_ratio: ratio(listBig, listSmall),
      unread_huge: { ...unreadHuge, unread_count: hugeView.unread_count },
      unread_tiny: { ...unreadTiny, unread_count: tinyView.unread_count },
      unread_ratio: ratio(unreadHuge, unreadTiny),
    };
  } finally {
    await sql.end({ timeout: 5 });
    await stack.stop();
  }
}
