import { type SQL, sql } from 'drizzle-orm';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import type { MessagePageQuery, MessageView } from '../contract/messages.js';
import { isMember, isMemberSql } from '../conversations/membership.js';
import type { DatabaseHandle } from '../db/client.js';
import { intArray, toNumber } from '../db/sql.js';
import { notFound } from '../domain/errors.js';
import { timeStatement, type StatementTimer } from '../domain/observer.js';
import {
  attachmentColumns, messageBaseColumns, messageView, reactionsOf, replyToColumn, type AttachmentRecord, type MessageRecord,
} from './views.js';

/** A page request: the contract's query, as validated. */
export type PageRequest = Pick<MessagePageQuery, 'limit'> & { before?: number | undefined; after?: number | undefined };

export interface MessagePage {
  /** Ascending id order. */
  messages: MessageView[];
  /** More messages exist beyond the page in the direction it was read. */
  hasMore: boolean;
}

/** Which bounds a page request has; each shape is its own prepared statement. */
type PageShape = 'newest' | 'before' | 'after' | 'between';

/** A history row: attachments, reactions and reply previews are read apart, for the rows that have some. */
export interface PageRow extends MessageRecord {
  attachment_count: number;
  reaction_count: number;
  reply_to_id: unknown;
}

/** Columns of `PageRow` beyond `messageBaseColumns`, from `messages m`. */
export const pageRowCounters: SQL = sql`
  case when m.is_deleted then 0 else m.attachment_count end as attachment_count,
  case when m.is_deleted then 0 else m.reaction_count end as reaction_count, m.reply_to_id`;

interface MessageAttachmentRow extends AttachmentRecord, Record<string, unknown> {
  message_id: unknown;
}

/**
 * The statement for one page shape. The caller's membership is a filter of the same
 * statement (an uncorrelated EXISTS: evaluated once, not per row). Reading forward from
 * `after` walks up; everything else walks down from the newest. No attachments sub-select:
 * PostgreSQL pays for it even when no message has one (bench/README.md, tuning notes); the
 * rare page with attachments reads them in a second one.
 */
function pageStatement(shape: PageShape): SQL {
  const filters: SQL[] = [
    sql`m.conversation_id = ${sql.placeholder('conversationId')}`,
    isMemberSql(sql.placeholder('conversationId'), sql.placeholder('userId')),
  ];
  if (shape === 'before' || shape === 'between') filters.push(sql`m.id < ${sql.placeholder('before')}`);
  if (shape === 'after' || shape === 'between') filters.push(sql`m.id > ${sql.placeholder('after')}`);
  return sql`
    select ${messageBaseColumns}, ${pageRowCounters}
      from messages m join users u on u.id = m.sender_id
     where ${sql.join(filters, sql` and `)}
     order by m.id ${shape === 'after' ? sql`asc` : sql`desc`} limit ${sql.placeholder('limit')}`;
}

const PAGE_STATEMENTS: Record<PageShape, SQL> = {
  newest: pageStatement('newest'),
  before: pageStatement('before'),
  after: pageStatement('after'),
  between: pageStatement('between'),
};

const ATTACHMENTS_OF_MESSAGES = sql`
  select a.message_id, ${attachmentColumns} from attachments a
   where a.message_id = any(${sql.placeholder('ids')}::int8[]) order by a.message_id, a.id`;

/**
 * A page of history: newest `limit` by default, older than `before`, newer than `after`.
 * One statement in the common case (messages with senders, filtered by the caller's
 * membership); a page with attachments reads them in a second, and an empty page costs a
 * second look to tell "no messages" from "not yours". Round trips matter here: history is
 * the busiest read.
 */
export async function listMessages(
  database: DatabaseHandle,
  links: AttachmentLinkSigner,
  userId: number,
  conversationId: number,
  page: PageRequest,
  timer?: StatementTimer,
): Promise<MessagePage> {
  const { before, after } = page;
  const shape: PageShape =
    before === undefined ? (after === undefined ? 'newest' : 'after') : after === undefined ? 'before' : 'between';
  const rows = await timeStatement(timer, 'history_page', () =>
    database.prepare<PageRow>(PAGE_STATEMENTS[shape])({ conversationId, userId, before, after, limit: page.limit + 1 }),
  );
  if (rows.length === 0 && !(await isMember(database, userId, conversationId))) throw notFound('conversation not found');
  const hasMore = rows.length > page.limit;
  const pageRows = rows.slice(0, page.limit);
  if (shape !== 'after') pageRows.reverse();
  await completeRows(database, pageRows);
  return { messages: pageRows.map((row) => messageView(row, links)), hasMore };
}

const REACTIONS_OF_MESSAGES = reactionsOf(sql`${sql.placeholder('ids')}::int8[]`);
const REPLY_PREVIEWS = sql`
  select m.id as message_id, ${replyToColumn} from messages m where m.id = any(${sql.placeholder('ids')}::int8[])`;

interface ReactionRow extends Record<string, unknown> {
  message_id: unknown;
  emoji: string;
  count: unknown;
  users: string[];
}

/**
 * Sets `attachments`, `reactions` and `reply_to` on each row, reading each only for the rows
 * that have some (their counters and `reply_to_id` say so): a page without any costs nothing
 * more than its one statement.
 */
export async function completeRows(database: DatabaseHandle, rows: PageRow[]): Promise<void> {
  await Promise.all([attachAttachments(database, rows), attachReactions(database, rows), attachReplies(database, rows)]);
}

async function attachReactions(database: DatabaseHandle, rows: PageRow[]): Promise<void> {
  const reacted = rows.filter((row) => row.reaction_count > 0);
  for (const row of rows) row.reactions = null;
  if (reacted.length === 0) return;
  const byMessage = new Map<number, { emoji: string; count: number; users: string[] }[]>();
  const ids = intArray(reacted.map((row) => toNumber(row.id)));
  for (const reaction of await database.prepare<ReactionRow>(REACTIONS_OF_MESSAGES)({ ids })) {
    const messageId = toNumber(reaction.message_id);
    const view = { emoji: reaction.emoji, count: toNumber(reaction.count), users: reaction.users };
    const list = byMessage.get(messageId);
    if (list) list.push(view);
    else byMessage.set(messageId, [view]);
  }
  for (const row of reacted) row.reactions = byMessage.get(toNumber(row.id)) ?? null;
}

async function attachReplies(database: DatabaseHandle, rows: PageRow[]): Promise<void> {
  const replies = rows.filter((row) => row.reply_to_id !== null);
  for (const row of rows) row.reply_to = null;
  if (replies.length === 0) return;
  const ids = intArray(replies.map((row) => toNumber(row.id)));
  const previews = new Map<number, unknown>();
  for (const preview of await database.prepare<{ message_id: unknown; reply_to: unknown }>(REPLY_PREVIEWS)({ ids })) {
    previews.set(toNumber(preview.message_id), preview.reply_to);
  }
  for (const row of replies) row.reply_to = previews.get(toNumber(row.id)) ?? null;
}

/** Sets `attachments` on each row: null (none) or the rows of those that count some. */
async function attachAttachments(database: DatabaseHandle, rows: PageRow[]): Promise<void> {
  const withFiles = rows.filter((row) => row.attachment_count > 0);
  for (const row of rows) row.attachments = null;
  if (withFiles.length === 0) return;
  const byMessage = new Map<number, AttachmentRecord[]>();
  const ids = intArray(withFiles.map((row) => toNumber(row.id)));
  for (const attachment of await database.prepare<MessageAttachmentRow>(ATTACHMENTS_OF_MESSAGES)({ ids })) {
    const messageId = toNumber(attachment.message_id);
    const list = byMessage.get(messageId);
    if (list) list.push(attachment);
    else byMessage.set(messageId, [attachment]);
  }
  for (const row of withFiles) row.attachments = byMessage.get(toNumber(row.id)) ?? [];
}
