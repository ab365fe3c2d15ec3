import { type SQL, type SQLWrapper, sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db/client.js';

type SqlValue = SQLWrapper | number;

/**
 * SQL that is true when the user is a member of the conversation (either side a column, a
 * placeholder or a number). Every membership check of every statement is this one, so a
 * change to who counts as a member is made in one place.
 */
export const isMemberSql = (conversationId: SqlValue, userId: SqlValue): SQL =>
  sql`exists (select 1 from participants mp where mp.conversation_id = ${conversationId} and mp.user_id = ${userId})`;

export async function isMember(database: DatabaseHandle, userId: number, conversationId: number): Promise<boolean> {
  const [row] = await database.query<{ member: boolean }>(sql`select ${isMemberSql(conversationId, userId)} as member`);
  return row?.member === true;
}
