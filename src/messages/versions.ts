import { sql } from 'drizzle-orm';
import type { MessageVersionView } from '../contract/messages.js';
import { isMemberSql } from '../conversations/membership.js';
import type { DatabaseHandle } from '../db/client.js';
import { isoTime } from '../db/sql.js';
import { notFound } from '../domain/errors.js';

/**
 * The versions edits replaced, oldest first, for members only (404 otherwise, as for a
 * message that is not the conversation's). A deleted message has none: its delete erased them.
 */
export async function messageVersions(
  database: DatabaseHandle,
  userId: number,
  conversationId: number,
  messageId: number,
): Promise<MessageVersionView[]> {
  const [row] = await database.query<{ member: boolean; found: boolean; versions: unknown }>(sql`
    select ${isMemberSql(conversationId, userId)} as member,
           exists (select 1 from messages m where m.id = ${messageId} and m.conversation_id = ${conversationId}) as found,
           (select json_agg(json_build_object('content', v.content, 'edited_at', ${isoTime(sql`v.written_at`)}) order by v.id)
              from message_versions v join messages m on m.id = v.message_id
             where v.message_id = ${messageId} and m.conversation_id = ${conversationId} and not m.is_deleted) as versions`);
  if (!row?.member) throw notFound('conversation not found');
  if (!row.found) throw notFound('message not found');
  const versions = typeof row.versions === 'string' ? JSON.parse(row.versions) : row.versions;
  return (versions ?? []) as MessageVersionView[];
}
