import { type SQL, type SQLWrapper, sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db/client.js';
import { toNumber } from '../db/sql.js';

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

/**
 * The conversation's newest seq if the user is a member, else null, read in one statement
 * (one snapshot): a membership change after it has a larger seq.
 */
export async function memberPosition(database: DatabaseHandle, userId: number, conversationId: number): Promise<number | null> {
  const [row] = await database.query<{ last_seq: unknown }>(
    sql`select c.last_seq from conversations c where c.id = ${conversationId} and ${isMemberSql(sql`c.id`, userId)}`,
  );
  return row ? toNumber(row.last_seq) : null;
}
