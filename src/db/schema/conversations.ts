import { bigint, index, integer, pgTable, primaryKey, timestamp } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';
import { users } from './users.js';

export const conversations = pgTable('conversations', {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    createdById: integer('created_by_id').notNull().references(() => users.id),
    createdAt: createdAt(),
    /** The `seq` of the newest conversation event; the row lock on it serialises writers. */
    lastSeq: bigint('last_seq', { mode: 'number' }).notNull().default(0),
    lastMessageAt: timestamp('last_message_at', { withTimezone: true, mode: 'date' }),
});

export const participants = pgTable(
  'participants',
  {
    conversationId: integer('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    joinedAt: timestamp('joined_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: 'participants_pkey', columns: [t.conversationId, t.userId] }),
    index('participants_user_idx').on(t.userId, t.conversationId),
  ],
);

export type ConversationRow = typeof conversations.$inferSelect;
