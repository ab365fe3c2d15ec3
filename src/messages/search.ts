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

interface SearchRow extends PageRow {
  scanned: unknown;
  scanned_to: unknown;
}

/**
 * Messages the caller can read now that hold every word of `q`, newest first.
 *
 * One statement. It walks one word's index rows newest first (`message_words_word_idx`,
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

  const checks: SQL[] = [
    ...(byHead ? [hasPrefix(sql`c.word`)] : []),
    request.conversationId === undefined
      ? sql`c.conversation_id in (select p.conversation_id from participants p where p.user_id = ${userId})`
      : sql`c.conversation_id = ${request.conversationId} and ${isMemberSql(request.conversationId, userId)}`,
  ];
  for (const word of exact) {
    if (word !== driving) checks.push(sql`exists (select 1 from message_words x where x.message_id = c.message_id and x.word = ${word})`);
  }
  // Driven by a whole word, the last word is one more check; otherwise it drives.
  if (driving !== undefined) {
    const lastWord = prefix ? hasPrefix(sql`x.word`) : sql`x.word = ${last}`;
    checks.push(sql`exists (select 1 from message_words x where x.message_id = c.message_id and ${lastWord})`);
  }

  const rows = await database.query<SearchRow>(sql`
    with candidates as (
      select w.message_id, w.conversation_id, w.word from message_words w
       where ${sql.join(drive, sql` and `)}
       order by w.message_id desc limit ${SEARCH_SCAN_ROWS}),
    hits as (
      select distinct c.message_id from candidates c
       where ${sql.join(checks, sql` and `)}
       order by c.message_id desc limit ${request.limit + 1}),
    scan as (select count(*) as scanned, min(message_id) as scanned_to from candidates)
    select scan.scanned, scan.scanned_to, page.*
      from scan left join (
        select ${messageBaseColumns}, ${pageRowCounters}
          from hits join messages m on m.id = hits.message_id join users u on u.id = m.sender_id
         where not m.is_deleted) page on true
     order by page.id desc`);

  const scanned = toNumber(rows[0]?.scanned ?? 0);
  const pageRows = rows.filter((row) => row.id !== null);
  // As the conversation's other routes: a conversation of others is not found (a hit proves membership).
  if (request.conversationId !== undefined && pageRows.length === 0 && !(await isMember(database, userId, request.conversationId))) {
    throw notFound('conversation not found');
  }
  const full = pageRows.length > request.limit;
  const messages = pageRows.slice(0, request.limit);
  await completeRows(database, messages);
  let nextBefore: number | null = null;
  if (full) nextBefore = toNumber(messages.at(-1)!.id);
  else if (scanned >= SEARCH_SCAN_ROWS) nextBefore = toNumber(rows[0]!.scanned_to);
  return { messages: messages.map((row) => messageView(row, links)), nextBefore };
}
