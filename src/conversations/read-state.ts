import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db/client.js';
import { toNumber } from '../db/sql.js';
import { notFound } from '../domain/errors.js';
import type { ReadStateView } from '../contract/conversations.js';

/**
 * A member's unread count from positions, never by counting their messages (INBOX.md), for
 * `conversations c` and the member's `participants p`: messages created since the marker
 * (`message_count - read_count`), less the deleted ones among them that others sent
 * (messages_deleted_idx: deletions are few). The member's own messages after the marker need
 * no term: sending moves the sender's marker to their message (send-batcher.ts).
 */
export const unreadCountSql = sql`greatest(0, c.message_count - p.read_count - (
  select count(*) from messages d
   where d.conversation_id = c.id and d.is_deleted and d.seq > p.last_read_seq and d.sender_id <> p.user_id))::int8`;

/** What moving a marker did. */
export interface MarkedRead extends ReadStateView {
  /** The marker moved (a seq at or below it changes nothing). */
  moved: boolean;
  member_count: number;
  /** The caller's "new messages" notifications this read marked read (nothing unread is left). */
  readNotificationIds: number[];
}

interface MarkedRow extends Record<string, unknown> {
  last_read_seq: unknown;
  unread_count: unknown;
  moved: boolean;
  member_count: unknown;
  read_notifications: unknown;
}

/**
 * Moves the caller's marker to `seq`, in one statement: only forward, never past the
 * conversation's `last_seq` (a larger seq is clamped to it). The marker's `read_count` is the
 * `message_count` of the event row at that seq (a primary-key lookup). When nothing unread is
 * left, the caller's unread "new messages" notification of the conversation is marked read in
 * the same statement. The participant row is locked first (concurrent reads of the same
 * member move it to the larger of the two), then the notification row, the order in which
 * every writer of both takes them; the conversation row is only read.
 */
const MARK_READ = sql`
  with me as (
    select p.user_id, p.conversation_id, p.last_read_seq as old_seq, p.read_count as old_count
      from participants p
     where p.conversation_id = ${sql.placeholder('conversationId')} and p.user_id = ${sql.placeholder('userId')}
       for update),
  target as (
    select me.*, c.message_count, c.member_count,
           greatest(me.old_seq, least(${sql.placeholder('seq')}::int8, c.last_seq)) as seq
      from me join conversations c on c.id = me.conversation_id),
  counted as (
    select t.*, case when t.seq = t.old_seq then t.old_count
                     else coalesce((select e.message_count from conversation_events e
                                     where e.conversation_id = t.conversation_id and e.seq = t.seq), 0) end as read_count
      from target t),
  moved as (
    update participants p set last_read_seq = k.seq, read_count = k.read_count
      from counted k
     where p.conversation_id = k.conversation_id and p.user_id = k.user_id and k.seq > k.old_seq),
  state as (
    select k.*, greatest(0, k.message_count - k.read_count - (
             select count(*) from messages d
              where d.conversation_id = k.conversation_id and d.is_deleted and d.seq > k.seq and d.sender_id <> k.user_id))::int8 as unread
      from counted k),
  notified as (
    update notifications n set is_read = true
      from state s
     where s.unread = 0 and n.user_id = s.user_id and n.conversation_id = s.conversation_id
       and not n.is_read and n.kind = 'messages.new'
    returning n.id)
  select s.seq as last_read_seq, s.unread as unread_count, s.seq > s.old_seq as moved, s.member_count,
         (select coalesce(json_agg(id), '[]'::json) from notified) as read_notifications
    from state s`;

/** 404 when the caller is not a member (or the conversation does not exist). */
export async function markRead(database: DatabaseHandle, userId: number, conversationId: number, seq: number): Promise<MarkedRead> {
  const [row] = await database.prepare<MarkedRow>(MARK_READ)({ userId, conversationId, seq });
  if (!row) throw notFound('conversation not found');
  const ids = typeof row.read_notifications === 'string' ? JSON.parse(row.read_notifications) : row.read_notifications;
  return {
    last_read_seq: toNumber(row.last_read_seq),
    unread_count: toNumber(row.unread_count),
    moved: row.moved,
    member_count: toNumber(row.member_count),
    readNotificationIds: (ids as unknown[]).map(toNumber),
  };
}
