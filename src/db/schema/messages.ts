import { sql } from 'drizzle-orm';
import { bigint, boolean, index, integer, pgTable, primaryKey, smallint, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';
import { conversations } from './conversations.js';
import { users } from './users.js';

export const messages = pgTable(
  'messages',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    conversationId: integer('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    senderId: integer('sender_id')
      .notNull()
      .references(() => users.id),
    /** Emptied for good when the message is deleted. */
    content: text('content').notNull(),
    clientId: text('client_id'),
    /** The seq of the event that created it (an idempotent retry returns it with the message). */
    seq: bigint('seq', { mode: 'number' }).notNull(),
    createdAt: createdAt(),
    editedAt: timestamp('edited_at', { withTimezone: true, mode: 'date' }),
    isDeleted: boolean('is_deleted').notNull().default(false),
    /** Lets a page of history skip the attachments lookup for the (many) messages without any. */
    attachmentCount: integer('attachment_count').notNull().default(0),
  },
  (t) => [
    index('messages_conversation_id_idx').on(t.conversationId, t.id),
    // Idempotent sends: a retried client_id finds the first message instead of making a second.
    uniqueIndex('messages_client_id_key')
      .on(t.conversationId, t.senderId, t.clientId)
      .where(sql`${t.clientId} is not null`),
  ],
);

/** Event kinds as stored (smallint keeps the event log narrow). */
export const EventKind = {
  messageCreated: 1,
  messageEdited: 2,
  messageDeleted: 3,
  attachmentAdded: 4,
} as const;
export type EventKind = (typeof EventKind)[keyof typeof EventKind];

/**
 * The per-conversation event log that makes resume possible. It stores references, not
 * payloads: a replayed event is rendered from the current rows, so deleted text never
 * comes back from the log.
 */
export const conversationEvents = pgTable(
  'conversation_events',
  {
    conversationId: integer('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    kind: smallint('kind').notNull().$type<EventKind>(),
    messageId: bigint('message_id', { mode: 'number' }).notNull(),
    attachmentId: bigint('attachment_id', { mode: 'number' }),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ name: 'conversation_events_pkey', columns: [t.conversationId, t.seq] })],
);

export type MessageRow = typeof messages.$inferSelect;
