import { type SQL, sql } from 'drizzle-orm';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import { isoFrom, isoTime, toNumber } from '../db/sql.js';
import type { AttachmentView, MessageView, ReactionView, ReplyPreviewView } from '../contract/messages.js';

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

/** The preview of the message `m` answers (API.md: 200 characters, no text once deleted); null for most. */
export const replyToColumn: SQL = sql`
  case when m.reply_to_id is null then null else (
    select json_build_object('id', r.id, 'sender', ru.username,
                             'content', case when r.is_deleted then '' else left(r.content, 200) end, 'is_deleted', r.is_deleted)
      from messages r join users ru on ru.id = r.sender_id where r.id = m.reply_to_id) end as reply_to`;

/**
 * The reactions of the messages whose ids are `ids` (an SQL int8[]), one row per message and
 * emoji in the order each emoji first came, with the first ten users.
 */
export const reactionsOf = (ids: SQL): SQL => sql`
  select r.message_id, r.emoji, count(*)::int4 as count,
         (array_agg(u.username order by r.created_at, r.user_id))[1:10] as users, min(r.created_at) as first_at
    from message_reactions r join users u on u.id = r.user_id
   where r.message_id = any(${ids})
   group by r.message_id, r.emoji
   order by r.message_id, min(r.created_at), r.emoji`;

/** The reactions of `m` as JSON, read only when it counts some. */
export const reactionsColumn: SQL = sql`
  case when m.is_deleted or m.reaction_count = 0 then null else (
    select json_agg(json_build_object('emoji', x.emoji, 'count', x.count, 'users', x.users) order by x.first_at, x.emoji)
      from (${reactionsOf(sql`array[m.id]`)}) x) end as reactions`;

/**
 * Message columns for `MessageRecord` as the event log renders a `chat.message`: no
 * reactions (a new message has none; the log's reaction events rebuild them), from
 * `messages m join users u on u.id = m.sender_id`.
 */
export const messageEventColumns: SQL = sql`${messageBaseColumns},
  case when m.is_deleted or m.attachment_count = 0 then null else coalesce(
    (select json_agg(json_build_object(
        'id', a.id, 'filename', a.filename, 'content_type', a.content_type, 'size', a.size,
        'uploaded_at', ${isoTime(sql`a.created_at`)}) order by a.id)
       from attachments a where a.message_id = m.id),
    '[]'::json) end as attachments,
  ${replyToColumn}`;

/** Message columns for `MessageRecord` as it is now, from `messages m join users u on u.id = m.sender_id`. */
export const messageColumns: SQL = sql`${messageEventColumns}, ${reactionsColumn}`;

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
  /** JSON of the reply preview, or null. */
  reply_to?: unknown;
  /** JSON of the reactions, or null (none, or not read). */
  reactions?: unknown;
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
  // The contract's order, which the live event (message-writes.ts) also follows: a replay is
  // byte for byte what was delivered live.
  reply_to: row.reply_to === null || row.reply_to === undefined ? null : replyPreview(parseJson<ReplyRecord>(row.reply_to)),
  reactions: row.reactions === null || row.reactions === undefined ? [] : parseJson<ReactionView[]>(row.reactions),
  mentions: row.mentions ?? [],
});

interface ReplyRecord {
  id: unknown;
  sender: string;
  content: string;
  is_deleted: boolean;
}

const replyPreview = (row: ReplyRecord): ReplyPreviewView => ({
  id: toNumber(row.id),
  sender: row.sender,
  content: row.content,
  is_deleted: row.is_deleted,
});
