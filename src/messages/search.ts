import { type SQL, sql } from 'drizzle-orm';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import { SEARCH_MAX_WORDS, type MessageView } from '../contract/messages.js';
import { isMember, isMemberSql } from '../conversations/membership.js';
import type { DatabaseHandle } from '../db/client.js';
import { toNumber } from '../db/sql.js';
import { invalid, notFound } from '../domain/errors.js';
import { completeRows, pageRowCounters, type PageRow } from './history.js';
import { MAX_WORD_LENGTH, normalizeText } from './search-words.js';
import { messageBaseColumns, messageView } from './views.js';

/**
 * Index rows one page examines at most: the driving word's newest rows (see `searchMessages`).
 * It bounds a page's cost whatever the history's size; a page that stopped here before
 * filling carries on with `before` in its Link.
 */
export const SEARCH_SCAN_ROWS = 2_000;
/** A last word this long or longer is also a prefix; shorter ones match whole words only. */
export const PREFIX_MIN_LENGTH = 3;

export interface SearchRequest {
  q: string;
  conversationId?: number | undefined;
  limit: number;
  before?: number | undefined;
}

export interface SearchPage {
  /** Newest first. */
  messages: MessageView[];
  /** Where the next page starts (its `before`), or null at the end. */
  nextBefore: number | null;
}

/** The query's words: every one whole, the last one (`prefix`) also as a prefix when long enough. */
export interface SearchTerms {
  exact: string[];
  last: string;
  prefix: boolean;
}

const WORD = /[\p{L}\p{N}]+/gu;

/** Splits and normalises `q` as the index does; 400 for no word or too many. */
export function searchTerms(q: string): SearchTerms {
  const words: string[] = [];
  for (const [match] of normalizeText(q).matchAll(WORD)) {
    words.push([...match].slice(0, MAX_WORD_LENGTH).join(''));
    if (words.length > SEARCH_MAX_WORDS) throw invalid(`q: at most ${SEARCH_MAX_WORDS} words`);
  }
  const last = words.pop();
  if (last === undefined) throw invalid('q: must contain a word (letters or digits)');
  const prefix = [...last].length >= PREFIX_MIN_LENGTH && [...last].length < MAX_WORD_LENGTH;
  const exact = [...new Set(words)].filter((word) => prefix || word !== last);
  return { exact, last, prefix };
}

/**
 * Messages the caller can read now that hold every word of `q`, newest first.
 *
 * One statement (and, for a page that is not full, a second that tells whether the scan
 * ended at its bound). It walks one word's index rows newest first (`message_words_word_idx`,
 * the longest whole word, which is likely the rarest; with only a prefix,
 * `message_words_head_idx` by its first three characters), at most `SEARCH_SCAN_ROWS` of
 * them (a prefix's words of the same head count too: a message can appear twice), keeps those of conversations the caller is a member of now, checks the other
 * words of each candidate by the primary key (message id, word), and joins the page's
 * messages. Its cost is bounded by the scan, not by the size of the history; deleted
 * messages have no words (their delete removed them), edited ones only their current words.
 */
export async function searchMessages(
  database: DatabaseHandle,
  links: AttachmentLinkSigner,
  userId: number,
  request: SearchRequest,
): Promise<SearchPage> {
  const { exact, last, prefix } = searchTerms(request.q);
  const driving = [...exact].sort((a, b) => [...b].length - [...a].length)[0];
  const lastLength = [...last].length;
  const hasPrefix = (column: SQL) => sql`left(${column}, ${lastLength}) = ${last}`;

  // A prefix alone walks every word of its first three characters (bounded by the scan) and
  // keeps those with the whole prefix afterwards, so the scan's cost never depends on how
  // rare the prefix is among them.
  const byHead = driving === undefined && prefix;
  const drive: SQL[] = [
    driving !== undefined ? sql`w.word = ${driving}` : byHead ? sql`left(w.word, 3) = ${[...last].slice(0, 3).join('')}` : sql`w.word = ${last}`,
  ];
  if (request.before !== undefined) drive.push(sql`w.message_id < ${request.before}`);

  // Each further word is looked up per candidate (a sub-select with LIMIT stays a lookup by
  // message id; as EXISTS the planner may hash every row of a common word instead).
  const has = (condition: SQL) => sql`(select 1 from message_words x where x.message_id = c.message_id and ${condition} limit 1) is not null`;
  const checks: SQL[] = [
    ...(byHead ? [hasPrefix(sql`c.word`)] : []),
    request.conversationId === undefined
      ? sql`c.conversation_id in (select p.conversation_id from participants p where p.user_id = ${userId})`
      : sql`c.conversation_id = ${request.conversationId} and ${isMemberSql(request.conversationId, userId)}`,
  ];
  for (const word of exact) if (word !== driving) checks.push(has(sql`x.word = ${word}`));
  // Driven by a whole word, the last word is one more check; otherwise it drives.
  if (driving !== undefined) checks.push(has(prefix ? hasPrefix(sql`x.word`) : sql`x.word = ${last}`));

  const scan = sql`
    select w.message_id, w.conversation_id, w.word from message_words w
     where ${sql.join(drive, sql` and `)}
     order by w.message_id desc limit ${SEARCH_SCAN_ROWS}`;
  // The candidates stream in index order: the page stops reading them once it is full.
  const rows = await database.query<PageRow>(sql`
    select ${messageBaseColumns}, ${pageRowCounters}
      from (select ${byHead ? sql`distinct on (c.message_id)` : sql``} c.message_id from (${scan}) c
             where ${sql.join(checks, sql` and `)}
             order by c.message_id desc limit ${request.limit + 1}) hits
      join messages m on m.id = hits.message_id join users u on u.id = m.sender_id
     where not m.is_deleted
     order by m.id desc`);

  // As the conversation's other routes: a conversation of others is not found (a hit proves membership).
  if (request.conversationId !== undefined && rows.length === 0 && !(await isMember(database, userId, request.conversationId))) {
    throw notFound('conversation not found');
  }
  const messages = rows.slice(0, request.limit);
  await completeRows(database, messages);
  let nextBefore: number | null = null;
  if (rows.length > request.limit) nextBefore = toNumber(messages.at(-1)!.id);
  else {
    // A short page: did it stop at the end of the word's rows, or at the bound of the scan?
    const [bound] = await database.query<{ scanned: unknown; scanned_to: unknown }>(
      sql`select count(*) as scanned, min(s.message_id) as scanned_to from (${scan}) s`,
    );
    if (toNumber(bound?.scanned ?? 0) >= SEARCH_SCAN_ROWS) nextBefore = toNumber(bound!.scanned_to);
  }
  return { messages: messages.map((row) => messageView(row, links)), nextBefore };
}
