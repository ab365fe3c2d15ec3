/**
 * search: a search must stay index-bound as history grows (issue 17, "Speed"). Seeds, straight
 * into the workload's database, two histories of the same shape and vocabulary: `big`, a
 * member of `--search-conversations` conversations holding `--search-messages` messages
 * (1,000 and 1,000,000 by default), and `small`, of as many conversations holding a hundredth
 * of them; each history has its own words (prefixed `b` or `s`), so neither query walks the
 * other's rows. Words are what the service's tokenizer makes of the ASCII text (lower-case
 * runs of letters and digits). autocannon then reads, for each user in turn on both replicas:
 * - two words that meet in one message of 100, the second also as a prefix
 *   (`GET /api/search/?q=bb42+ba2`);
 * - a prefix alone, of about one word in 100 of its kind (`q=bc14`: bc14, bc140…bc149);
 * both fill a page of 20 in either history (at the default sizes), so both answers cost the
 * same to render and what differs is only the history's size; the report gives big / small
 * for each (goal >= 0.5).
 */
import postgres from 'postgres';
import { log } from '../lib/log.js';
import type { Options } from '../lib/options.js';
import { round } from '../lib/stats.js';
import { register, request } from '../load/api.js';
import { mean, measure, type Rate } from '../load/rates.js';
import { type StackContext, startStack } from '../stack/stack.js';


export interface SearchResult {
  duration_s: number;
  connections_per_replica: number;
  conversations: number;
  big_messages: number;
  small_messages: number;
  words_big: Rate & { results: number };
  words_small: Rate & { results: number };
  /** words_big / words_small request rates; goal >= 0.5. */
  words_ratio: number;
  prefix_big: Rate & { results: number };
  prefix_small: Rate & { results: number };
  /** prefix_big / prefix_small request rates; goal >= 0.5. */
  prefix_ratio: number;
}


/**
 * `conversations` conversations of `memberId` and a sender, holding `messages` messages
 * spread evenly, and their words: message i says `<p>a<i%10> <p>b<i%100> <p>c<i%1000>
 * <p>d<i*7%10000> hello world`, so `<p>b42 <p>a2` meet in one message of 100.
 */
async function seedHistory(sql: postgres.Sql, prefix: string, memberId: number, senderId: number, conversations: number, messages: number) {
  const rows = await sql<{ id: number }[]>`
    insert into conversations (created_by_id, member_count) select ${senderId}, 2 from generate_series(1, ${conversations}) returning id`;
  const ids = `{${rows.map((r) => Number(r.id)).join(',')}}`;
  await sql`insert into participants (conversation_id, user_id, role)
    select c, m, case when m = ${senderId} then 'owner' else 'member' end from unnest(${ids}::int4[]) c, unnest(${`{${memberId},${senderId}}`}::int4[]) m`;
  // In slices, so no statement holds a million rows' worth of memory at once.
  const SLICE = 100_000;
  for (let from = 0; from < messages; from += SLICE) {
    const to = Math.min(messages, from + SLICE) - 1;
    await sql`
      with ids as (select ${ids}::int4[] as a),
      made as (
        insert into messages (conversation_id, sender_id, content, seq)
        select (select a[1 + i % ${conversations}] from ids), ${senderId},
               ${prefix} || 'a' || (i % 10) || ' ' || ${prefix} || 'b' || (i % 100) || ' ' || ${prefix} || 'c' || (i % 1000) || ' ' ||
               ${prefix} || 'd' || (i * 7 % 10000) || ' hello world',
               i / ${conversations} + 1
          from generate_series(${from}::int8, ${to}::int8) i
        returning id, conversation_id, content)
      insert into message_words (message_id, conversation_id, word)
      select made.id, made.conversation_id, w from made, regexp_split_to_table(made.content, ' ') w`;
    log(`search: ${prefix}: ${to + 1} of ${messages} messages`);
  }
}

export async function searchWorkload(context: StackContext, options: Options): Promise<SearchResult> {
  const stack = await startStack(context, 'search');
  const sql = postgres(stack.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const url = stack.urls[0]!;
    const tag = Date.now().toString(36);
    const [big, small, sender] = await Promise.all(['big', 'small', 'sender'].map((name) => register(url, `search_${name}_${tag}`)));
    const conversations = options.searchConversations;
    const bigMessages = options.searchMessages;
    const smallMessages = Math.max(1, Math.floor(bigMessages / 100));
    log(`search: seeding ${bigMessages} and ${smallMessages} messages over ${conversations} conversations each`);
    await sql`set synchronous_commit = off`;
    await seedHistory(sql, 'b', big!.id, sender!.id, conversations, bigMessages);
    await seedHistory(sql, 's', small!.id, sender!.id, conversations, smallMessages);
    await sql`vacuum analyze messages`;
    await sql`vacuum analyze message_words`;
    await sql`analyze`;

    const wordsPath = (p: string) => `/api/search/?q=${p}b42+${p}a2&limit=20`;
    const prefixPath = (p: string) => `/api/search/?q=${p}c14&limit=20`;
    const count = async (path: string, token: string) => ((await request(url, 'GET', path, { token })) as unknown[]).length;
    const results = {
      wordsBig: await count(wordsPath('b'), big!.token),
      wordsSmall: await count(wordsPath('s'), small!.token),
      prefixBig: await count(prefixPath('b'), big!.token),
      prefixSmall: await count(prefixPath('s'), small!.token),
    };
    if (results.wordsBig === 0 || results.wordsSmall === 0 || results.prefixBig === 0 || results.prefixSmall === 0) {
      throw new Error(`search: a query found nothing (${JSON.stringify(results)})`);
    }

    log(`search: ${options.connections} connections per replica, ${options.durationS} s per measurement`);
    const wordsBig = await measure(stack.urls, wordsPath('b'), big!.token, options);
    const wordsSmall = await measure(stack.urls, wordsPath('s'), small!.token, options);
    const prefixBig = await measure(stack.urls, prefixPath('b'), big!.token, options);
    const prefixSmall = await measure(stack.urls, prefixPath('s'), small!.token, options);
    const ratio = (a: Rate, b: Rate) => round(b.req_per_s > 0 ? a.req_per_s / b.req_per_s : 0, 3) ?? 0;
    return {
      duration_s: options.durationS,
      connections_per_replica: options.connections,
      conversations,
      big_messages: bigMessages,
      small_messages: smallMessages,
      words_big: { ...wordsBig, results: results.wordsBig },
      words_small: { ...wordsSmall, results: results.wordsSmall },
      words_ratio: ratio(wordsBig, wordsSmall),
      prefix_big: { ...prefixBig, results: results.prefixBig },
      prefix_small: { ...prefixSmall, results: results.prefixSmall },
      prefix_ratio: ratio(prefixBig, prefixSmall),
    };
  } finally {
    await sql.end({ timeout: 5 });
    await stack.stop();
  }
}
