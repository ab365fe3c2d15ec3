import { type SQL, sql } from 'drizzle-orm';
import { isoTime, toNumber } from '../db/sql.js';
import type { NotificationKind } from '../db/schema/index.js';
import type { NotificationView } from '../contract/notifications.js';


export interface NotificationRecord extends Record<string, unknown> {
  id: unknown;
  user_id: unknown;
  text: string;
  is_read: boolean;
  timestamp: string;
  kind: NotificationKind;
  conversation_id: unknown;
  message_id: unknown;
  count: unknown;
}

/** Columns for `NotificationRecord` from `notifications n`. */
export const notificationColumns: SQL = sql`n.id, n.user_id, n.text, n.is_read, ${isoTime(sql`n.updated_at`)} as timestamp,
  n.kind, n.conversation_id, n.message_id, n.count`;

const nullableNumber = (value: unknown): number | null => (value === null || value === undefined ? null : toNumber(value));

export const notificationView = (row: NotificationRecord): NotificationView => ({
  id: toNumber(row.id),
  message: row.text,
  is_read: row.is_read,
  timestamp: row.timestamp,
  kind: row.kind,
  conversation_id: nullableNumber(row.conversation_id),
  message_id: nullableNumber(row.message_id),
  count: toNumber(row.count),
});
