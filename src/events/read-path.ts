import { type SQL, sql } from 'drizzle-orm';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import type { DatabaseHandle } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { isoTime, toNumber } from '../db/sql.js';
import { notFound } from '../http/errors.js';
import { isParticipant } from '../conversations/service.js';
import type { ConversationEvent, MessageView } from './types.js';
import { attachmentView, messageColumns, messageView, type MessageRow } from './views.js';

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

/**
 * A page of history: newest `limit` by default, older than `before`, newer than `after`.
 * One statement in the common case (messages with senders and attachments, filtered by the
 * caller's membership); an empty page costs a second look to tell "no messages" from "not
 * yours". One round trip matters here: history is the busiest read.
 */
export async function listMessages(
  database: DatabaseHandle,
  links: AttachmentLinkSigner,
  userId: number,
  conversationId: number,
  page: PageRequest,
): Promise<MessagePage> {
  const filters: SQL[] = [
    sql`m.conversation_id = ${conversationId}`,
    sql`exists (select 1 from participants p where p.conversation_id = ${conversationId} and p.user_id = ${userId})`,
  ];
  if (page.before !== undefined) filters.push(sql`m.id < ${page.before}`);
  if (page.after !== undefined) filters.push(sql`m.id > ${page.after}`);
  // Reading forward from `after` walks up; everything else walks down from the newest.
  const ascending = page.after !== undefined && page.before === undefined;
  const rows = await database.query<MessageRow>(sql`
    select ${messageColumns} from messages m join users u on u.id = m.sender_id
     where ${sql.join(filters, sql` and `)}
     order by m.id ${ascending ? sql`asc` : sql`desc`} limit ${page.limit + 1}`);
  if (rows.length === 0 && !(await isParticipant(database, userId, conversationId))) throw notFound('conversation not found');
  const hasMore = rows.length > page.limit;
  const pageRows = rows.slice(0, page.limit);
  if (!ascending) pageRows.reverse();
  return { messages: pageRows.map((row) => messageView(row, links)), hasMore };
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
