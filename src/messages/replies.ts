import { sql } from 'drizzle-orm';
import type { ReplyPreviewView } from '../contract/messages.js';
import { isMemberSql } from '../conversations/membership.js';
import type { DatabaseHandle } from '../db/client.js';
import { toNumber } from '../db/sql.js';
import { conflict, invalid, notFound } from '../domain/errors.js';

/** `reply_to` as sent: absent (null), or a positive integer id. */
export function normalizeReplyTo(raw: unknown): number | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 1) throw invalid('reply_to: a message id (a positive integer)');
  return raw;
}

/**
 * The preview of the message a send answers, checked in one statement: the sender is a
 * member (404 otherwise, as for the send itself), the message is one of the same
 * conversation (400) and not deleted (409). A deletion racing the send leaves a reply to a
 * deleted message, whose preview then has no text, as for any reply whose original is
 * deleted later.
 */
export async function replyPreviewFor(
  database: DatabaseHandle,
  userId: number,
  conversationId: number,
  replyToId: number,
): Promise<ReplyPreviewView> {
  const [row] = await database.query<{ member: boolean; id: unknown; sender: string | null; content: string | null; is_deleted: boolean | null }>(sql`
    select ${isMemberSql(conversationId, userId)} as member, r.id, u.username as sender, left(r.content, 200) as content, r.is_deleted
      from (select 1) one
      left join messages r on r.id = ${replyToId} and r.conversation_id = ${conversationId}
      left join users u on u.id = r.sender_id`);
  if (!row?.member) throw notFound('conversation not found');
  if (row.id === null || row.sender === null) throw invalid('reply_to: not a message of this conversation');
  if (row.is_deleted) throw conflict('reply_to: that message is deleted');
  return { id: toNumber(row.id), sender: row.sender, content: row.content ?? '', is_deleted: false };
}
