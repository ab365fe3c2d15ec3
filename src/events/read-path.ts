import { type SQL, sql } from 'drizzle-orm';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import type { DatabaseHandle } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { intArray, isoTime, toNumber } from '../db/sql.js';
import { notFound } from '../http/errors.js';
import { isParticipant } from '../conversations/service.js';
import type { ConversationEvent, MessageView } from './types.js';
import { attachmentColumns, attachmentView, messageBaseColumns, messageColumns, messageView, type AttachmentRow, type MessageRow } from './views.js';

export interface PageRequest {
  limit: number;
  before?: number | undefined;
  after?: number | undefined;
}

export interface MessagePage {
  /** Ascending id order. */
  messages: MessageView[];
  /** More messages exist beyond the page in the direction it was read. */
  hasMore: boolean;
}

/** Which bounds a page request has; each shape is its own prepared statement. */
type PageShape = 'newest' | 'before' | 'after' | 'between';

/** A history row: the attachments are read apart, for the rows that count some. */
interface PageRow extends MessageRow {
  attachment_count: number;
}

interface MessageAttachmentRow extends AttachmentRow, Record<string, unknown> {
  message_id: unknown;
}

/**
 * The statement for one page shape. The caller's membership is a filter of the same
 * statement (an uncorrelated EXISTS: evaluated once, not per row). Reading forward from
 * `after` walks up; everything else walks down from the newest. No attachments sub-select:
 * even unevaluated (no message has one), it cost PostgreSQL a tenth of the statement; the
 * rare page with attachments reads them in a second one.
 */
function pageStatement(shape: PageShape): SQL {
  const filters: SQL[] = [
    sql`m.conversation_id = ${sql.placeholder('conversationId')}`,
    sql`exists (select 1 from participants p where p.conversation_id = ${sql.placeholder('conversationId')} and p.user_id = ${sql.placeholder('userId')})`,
  ];
  if (shape === 'before' || shape === 'between') filters.push(sql`m.id < ${sql.placeholder('before')}`);
  if (shape === 'after' || shape === 'between') filters.push(sql`m.id > ${sql.placeholder('after')}`);
  return sql`
    select ${messageBaseColumns}, case when m.is_deleted then 0 else m.attachment_count end as attachment_count
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
): Promise<MessagePage> {
  const { before, after } = page;
  const shape: PageShape =
    before === undefined ? (after === undefined ? 'newest' : 'after') : after === undefined ? 'before' : 'between';
  const rows = await database.prepare<PageRow>(PAGE_STATEMENTS[shape])({ conversationId, userId, before, after, limit: page.limit + 1 });
  if (rows.length === 0 && !(await isParticipant(database, userId, conversationId))) throw notFound('conversation not found');
  const hasMore = rows.length > page.limit;
  const pageRows = rows.slice(0, page.limit);
  if (shape !== 'after') pageRows.reverse();
  await attachAttachments(database, pageRows);
  return { messages: pageRows.map((row) => messageView(row, links)), hasMore };
}

/** Sets `attachments` on each row: null (none) or the rows of those that count some. */
async function attachAttachments(database: DatabaseHandle, rows: PageRow[]): Promise<void> {
  const withFiles = rows.filter((row) => row.attachment_count > 0);
  for (const row of rows) row.attachments = null;
  if (withFiles.length === 0) return;
  const byMessage = new Map<number, AttachmentRow[]>();
  const ids = intArray(withFiles.map((row) => toNumber(row.id)));
  for (const attachment of await database.prepare<MessageAttachmentRow>(ATTACHMENTS_OF_MESSAGES)({ ids })) {
    const messageId = toNumber(attachment.message_id);
    const list = byMessage.get(messageId);
    if (list) list.push(attachment);
    else byMessage.set(messageId, [attachment]);
  }
  for (const row of withFiles) row.attachments = byMessage.get(toNumber(row.id)) ?? [];
}

interface EventRow extends MessageRow {
  event_seq: unknown;
  kind: number;
  attachment_id: unknown;
  a_filename: string | null;
  a_content_type: string | null;
  a_size: unknown;
  a_uploaded_at: string | null;
}

/**
 * Events after `afterSeq`, in seq order, rendered from the current rows: an event about a
 * message that has since been deleted replays as that deletion (or, for its creation, as a
 * deleted message), so the log never serves deleted text or files again.
 */
export async function readEvents(
  database: DatabaseHandle,
  links: AttachmentLinkSigner,
  conversationId: number,
  afterSeq: number,
  limit: number,
): Promise<ConversationEvent[]> {
  const rows = await database.query<EventRow>(sql`
    select e.seq as event_seq, e.kind, e.attachment_id, ${messageColumns},
           a.filename as a_filename, a.content_type as a_content_type, a.size as a_size,
           ${isoTime(sql`a.created_at`)} as a_uploaded_at
      from conversation_events e
      join messages m on m.id = e.message_id
      join users u on u.id = m.sender_id
      left join attachments a on a.id = e.attachment_id
     where e.conversation_id = ${conversationId} and e.seq > ${afterSeq}
     order by e.seq limit ${limit}`);
  return rows.map((row) => renderEvent(row, links, conversationId));
}

function renderEvent(row: EventRow, links: AttachmentLinkSigner, conversationId: number): ConversationEvent {
  const seq = toNumber(row.event_seq);
  const message = messageView(row, links);
  // Same key order as live events, so a replayed event is byte-for-byte what was published.
  const base = { seq, conversation_id: conversationId };
  if (row.kind === EventKind.messageCreated) return { type: 'chat.message', ...base, message };
  if (row.kind === EventKind.messageEdited && !message.is_deleted) {
    return { type: 'message.edited', ...base, message: { id: message.id, content: message.content, is_edited: true, edited_at: message.edited_at } };
  }
  if (row.kind === EventKind.attachmentAdded && !message.is_deleted && row.a_filename !== null) {
    const attachment = attachmentView(
      { id: row.attachment_id, filename: row.a_filename, content_type: row.a_content_type ?? '', size: row.a_size, uploaded_at: row.a_uploaded_at ?? '' },
      links,
    );
    return { type: 'attachment.added', ...base, message_id: message.id, attachment };
  }
  return { type: 'message.deleted', ...base, message_id: message.id };
}
