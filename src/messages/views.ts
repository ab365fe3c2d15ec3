import { type SQL, sql } from 'drizzle-orm';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import { isoFrom, isoTime, toNumber } from '../db/sql.js';
import type { AttachmentView, MessageView } from '../contract/messages.js';

/**
 * Message columns for `MessageRecord` but `attachments`, from
 * `messages m join users u on u.id = m.sender_id`.
 */
export const messageBaseColumns: SQL = sql`
  m.id, m.conversation_id, m.sender_id, u.username as sender,
  case when m.is_deleted then '' else m.content end as content,
  m.client_id, m.seq, m.is_deleted, m.created_at, m.edited_at,
  case when m.is_deleted then null else m.mentions end as mentions`;

/** Attachment columns for `AttachmentRecord`, from `attachments a`. */
export const attachmentColumns: SQL = sql`
  a.id, a.filename, a.content_type, a.size, ${isoTime(sql`a.created_at`)} as uploaded_at`;

/** Message columns for `MessageRecord`, from `messages m join users u on u.id = m.sender_id`. */
export const messageColumns: SQL = sql`${messageBaseColumns},
  case when m.is_deleted or m.attachment_count = 0 then null else coalesce(
    (select json_agg(json_build_object(
        'id', a.id, 'filename', a.filename, 'content_type', a.content_type, 'size', a.size,
        'uploaded_at', ${isoTime(sql`a.created_at`)}) order by a.id)
       from attachments a where a.message_id = m.id),
    '[]'::json) end as attachments`;

export interface MessageRecord extends Record<string, unknown> {
  id: unknown;
  conversation_id: unknown;
  sender_id: unknown;
  sender: string;
  content: string;
  client_id: string | null;
  seq: unknown;
  is_deleted: boolean;
  created_at: unknown;
  edited_at: unknown;
  attachments: unknown;
  mentions: string[] | null;
}

export interface AttachmentRecord {
  id: unknown;
  filename: string;
  content_type: string;
  size: unknown;
  uploaded_at: string;
}

/** json columns arrive parsed from postgres.js and PGlite alike; text is parsed defensively. */
const parseJson = <T>(value: unknown): T => (typeof value === 'string' ? JSON.parse(value) : value) as T;

export const attachmentView = (row: AttachmentRecord, links: AttachmentLinkSigner): AttachmentView => {
  const id = toNumber(row.id);
  return {
    id,
    file: links.url({ id, filename: row.filename }),
    uploaded_at: row.uploaded_at,
    filename: row.filename,
    content_type: row.content_type,
    size: toNumber(row.size),
  };
};

export const messageView = (row: MessageRecord, links: AttachmentLinkSigner): MessageView => ({
  id: toNumber(row.id),
  conversation_id: toNumber(row.conversation_id),
  sender: row.sender,
  sender_id: toNumber(row.sender_id),
  content: row.content,
  timestamp: isoFrom(row.created_at),
  is_edited: row.edited_at !== null,
  is_deleted: row.is_deleted,
  edited_at: row.edited_at === null ? null : isoFrom(row.edited_at),
  client_id: row.client_id,
  seq: toNumber(row.seq),
  // null: no attachments (the common case, spared building and parsing '[]' per message).
  attachments: row.attachments === null ? [] : parseJson<AttachmentRecord[]>(row.attachments).map((a) => attachmentView(a, links)),
  mentions: row.mentions ?? [],
});
