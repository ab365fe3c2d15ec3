import { sql } from 'drizzle-orm';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import type { ConversationEvent } from '../contract/events.js';
import type { DatabaseHandle } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { isoTime, toNumber } from '../db/sql.js';
import { attachmentView, messageEventColumns, messageView, type MessageRecord } from './views.js';

interface EventRow extends MessageRecord {
  event_seq: unknown;
  kind: number;
  /** Membership and conversation events: their JSON as published (message columns are null). */
  payload: string | null;
  attachment_id: unknown;
  a_filename: string | null;
  a_content_type: string | null;
  a_size: unknown;
  a_uploaded_at: string | null;
}

/**
 * Events after `afterSeq`, in seq order. Message events render from the current rows: an
 * event about a message that has since been deleted replays as that deletion (or, for its
 * creation, as a deleted message), so the log never serves deleted text or files again.
 * Membership and conversation events replay as stored, the JSON that was published;
 * reaction events too, unless their message has since been deleted (its reactions went with
 * it): then they replay as that deletion. A replayed `chat.message` has no reactions, as
 * when it was new: the reaction events after it rebuild them, each once.
 */
export async function readEvents(
  database: DatabaseHandle,
  links: AttachmentLinkSigner,
  conversationId: number,
  afterSeq: number,
  limit: number,
): Promise<ConversationEvent[]> {
  const rows = await database.query<EventRow>(sql`
    select e.seq as event_seq, e.kind, e.attachment_id, e.payload, ${messageEventColumns},
           a.filename as a_filename, a.content_type as a_content_type, a.size as a_size,
           ${isoTime(sql`a.created_at`)} as a_uploaded_at
      from conversation_events e
      left join messages m on m.id = e.message_id
      left join users u on u.id = m.sender_id
      left join attachments a on a.id = e.attachment_id
     where e.conversation_id = ${conversationId} and e.seq > ${afterSeq}
     order by e.seq limit ${limit}`);
  return rows.map((row) => renderEvent(row, links, conversationId));
}

function renderEvent(row: EventRow, links: AttachmentLinkSigner, conversationId: number): ConversationEvent {
  const seq = toNumber(row.event_seq);
  const reaction = row.kind === EventKind.reactionAdded || row.kind === EventKind.reactionRemoved;
  if (reaction && row.is_deleted) return { type: 'message.deleted', seq, conversation_id: conversationId, message_id: toNumber(row.id) };
  if (row.payload !== null) return JSON.parse(row.payload) as ConversationEvent;
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
