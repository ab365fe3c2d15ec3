import { type SQL, type SQLWrapper, sql } from 'drizzle-orm';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import type { AuthUser } from '../domain/auth-user.js';
import type { DatabaseHandle } from '../db/client.js';
import { isoTime, toNumber } from '../db/sql.js';
import { MAX_LISTED_PARTICIPANTS, type ConversationView } from '../contract/conversations.js';
import { invalid, notFound } from '../domain/errors.js';
import { messageColumns, messageView, type MessageRecord } from '../messages/views.js';
import { unreadCountSql } from './read-state.js';

interface ConversationRecord extends Record<string, unknown> {
  id: unknown;
  created_at: string;
  last_message_at: string | null;
  last_seq: unknown;
  title: string | null;
  kind: 'direct' | 'group';
  member_count: unknown;
  last_read_seq: unknown;
  unread_count: unknown;
  participants: unknown;
  last_message: unknown;
  /** The list's sort key with microseconds (`2024-01-01T12:00:00.123456`), for the cursor. */
  activity: string;
}

/** json columns arrive parsed from postgres.js and PGlite alike; text is parsed defensively. */
const parseJson = <T>(value: unknown): T => (typeof value === 'string' ? JSON.parse(value) : value) as T;

const view = (row: ConversationRecord, links: AttachmentLinkSigner): ConversationView => {
  const last = row.last_message === null ? null : parseJson<MessageRecord>(row.last_message);
  return {
    id: toNumber(row.id),
    participants: parseJson<string[]>(row.participants),
    created_at: row.created_at,
    last_message_at: row.last_message_at,
    last_seq: toNumber(row.last_seq),
    title: row.title,
    kind: row.kind,
    member_count: toNumber(row.member_count),
    last_message: last && messageView(last, links),
    last_read_seq: toNumber(row.last_read_seq),
    unread_count: toNumber(row.unread_count),
  };
};

/** The list's order: newest activity (last message, else creation) first, id breaking ties. */
const activity = sql`coalesce(c.last_message_at, c.created_at)`;

/**
 * Conversation objects for the caller (`p`, their participant row) of the conversations
 * `page` selects (columns `id`, `activity`), in the list's order. Everything but the page's
 * own selection is per row of the page, by key: names through participants_joined_idx
 * (at most 100, the caller first), the newest message by messages_conversation_id_idx, the
 * unread count from the counters (read-state.ts), so a page costs the same however many
 * conversations, members and messages there are beyond it.
 */
const conversationObjects = (page: SQL, userId: SQLWrapper) => sql`
  with page as (${page})
  select c.id, ${isoTime(sql`c.created_at`)} as created_at, ${isoTime(sql`c.last_message_at`)} as last_message_at,
         c.last_seq, c.title, c.kind, c.member_count, p.last_read_seq,
         ${unreadCountSql} as unread_count,
         to_char(page.activity at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as activity,
         (select json_agg(n.username order by n.k, n.joined_at, n.user_id) from (
             (select 0 as k, null::timestamptz as joined_at, 0 as user_id, me.username from users me where me.id = p.user_id)
             union all
             (select 1, o.joined_at, o.user_id, u.username
                from participants o join users u on u.id = o.user_id
               where o.conversation_id = c.id and o.user_id <> p.user_id
               order by o.joined_at, o.user_id limit ${MAX_LISTED_PARTICIPANTS - 1})) n) as participants,
         (select row_to_json(lm) from (
             select ${messageColumns} from messages m join users u on u.id = m.sender_id
              where m.conversation_id = c.id order by m.id desc limit 1) lm) as last_message
    from page
    join conversations c on c.id = page.id
    join participants p on p.conversation_id = c.id and p.user_id = ${userId}
   order by page.activity desc, page.id desc`;

/**
 * The caller's conversations, newest activity first, from the start or after a cursor: the
 * tracked memberships as a range of participants_inbox_idx read backwards (it stops at the
 * page's end, however many conversations the caller is in), merged with the few memberships
 * of large conversations, whose activity is the conversation's own (inbox-order.ts).
 */
const listStatement = (withCursor: boolean) => {
  const after = (at: SQL, id: SQL) =>
    withCursor ? sql`and (${at}, ${id}) < (${sql.placeholder('beforeAt')}::timestamptz, ${sql.placeholder('beforeId')}::int4)` : sql``;
  return conversationObjects(
    sql`select id, activity from (
          (select p.conversation_id as id, p.activity_at as activity from participants p
            where p.user_id = ${sql.placeholder('userId')} and not p.large ${after(sql`p.activity_at`, sql`p.conversation_id`)}
            order by p.activity_at desc, p.conversation_id desc
            limit ${sql.placeholder('limit')})
          union all
          (select c.id, ${activity} from participants p join conversations c on c.id = p.conversation_id
            where p.user_id = ${sql.placeholder('userId')} and p.large ${after(activity, sql`c.id`)})) mine
         order by activity desc, id desc
         limit ${sql.placeholder('limit')}`,
    sql.placeholder('userId'),
  );
};

const LIST_FIRST = listStatement(false);
const LIST_AFTER_CURSOR = listStatement(true);
const ONE = conversationObjects(
  sql`select c.id, ${activity} as activity from conversations c where c.id = ${sql.placeholder('conversationId')}`,
  sql.placeholder('userId'),
);

export interface ConversationPage {
  conversations: ConversationView[];
  /** The cursor of the next page (`?before=`), or null when this is the last. */
  next: string | null;
}

/** A list cursor: the last item's activity (microseconds, UTC) and id. Opaque to clients. */
interface Cursor {
  at: string;
  id: number;
}

const CURSOR_TEXT = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})\|([1-9]\d{0,9})$/;

export const encodeCursor = (cursor: Cursor): string => Buffer.from(`${cursor.at}|${cursor.id}`).toString('base64url');

/** The cursor of `?before=`; a malformed one is bad input (400). */
export function decodeCursor(raw: string): Cursor {
  const match = /^[A-Za-z0-9_-]+$/.test(raw) ? CURSOR_TEXT.exec(Buffer.from(raw, 'base64url').toString('utf8')) : null;
  const id = match ? Number(match[2]) : NaN;
  if (!match || id > 2_147_483_647 || Number.isNaN(Date.parse(`${match[1]}Z`))) {
    throw invalid('before: not a cursor of this list (pass the one from the Link header)');
  }
  return { at: match[1]!, id };
}

export async function listConversations(
  database: DatabaseHandle,
  links: AttachmentLinkSigner,
  user: AuthUser,
  query: { limit: number; before?: string | undefined },
): Promise<ConversationPage> {
  const cursor = query.before === undefined ? undefined : decodeCursor(query.before);
  const values = { userId: user.id, limit: query.limit + 1, beforeAt: cursor && `${cursor.at}Z`, beforeId: cursor?.id };
  const rows = await database.prepare<ConversationRecord>(cursor ? LIST_AFTER_CURSOR : LIST_FIRST)(values);
  const pageRows = rows.slice(0, query.limit);
  const last = pageRows.at(-1);
  return {
    conversations: pageRows.map((row) => view(row, links)),
    next: rows.length > query.limit && last ? encodeCursor({ at: last.activity, id: toNumber(last.id) }) : null,
  };
}

/** 404 both when it does not exist and when the caller is not in it: existence is not revealed. */
export async function getConversation(
  database: DatabaseHandle,
  links: AttachmentLinkSigner,
  user: AuthUser,
  id: number,
): Promise<ConversationView> {
  const [row] = await database.prepare<ConversationRecord>(ONE)({ userId: user.id, conversationId: id });
  if (!row) throw notFound('conversation not found');
  return view(row, links);
}

/** RFC 8288 `Link` of a list page that has a next one. */
export const conversationPageLink = (publicUrl: string, limit: number, next: string): string =>
  `<${publicUrl}/api/conversations/?limit=${limit}&before=${next}>; rel="next"`;
