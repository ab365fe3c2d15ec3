import { sql } from 'drizzle-orm';
import { bigint, boolean, index, integer, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';
import { conversations } from './conversations.js';
import { users } from './users.js';

export const NotificationKind = { addedToConversation: 'conversation.added', newMessages: 'messages.new', mention: 'mention' } as const;
export type NotificationKind = (typeof NotificationKind)[keyof typeof NotificationKind];

export const notifications = pgTable(
  'notifications',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    kind: text('kind').notNull().$type<NotificationKind>(),
    conversationId: integer('conversation_id').references(() => conversations.id, { onDelete: 'cascade' }),
    /** The newest message this notification speaks of. */
    messageId: bigint('message_id', { mode: 'number' }),
    /**
     * A mention's message (null on every other kind), the key of its uniqueness. Not
     * `message_id`: the flush moves that on a "new messages" row with every message, and an
     * indexed column changed makes each of those updates non-HOT (a new entry in every index
     * of the table, dead ones left behind), partial index or not.
     */
    mentionMessageId: bigint('mention_message_id', { mode: 'number' }),
    /** How many messages one "new messages" notification stands for. */
    count: integer('count').notNull().default(1),
    text: text('text').notNull(),
    isRead: boolean('is_read').notNull().default(false),
    createdAt: createdAt(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    index('notifications_user_idx').on(t.userId, t.id),
    // At most one unread "new messages" row per user and conversation: later messages update it.
    uniqueIndex('notifications_one_unread_key')
      .on(t.userId, t.conversationId)
      .where(sql`not ${t.isRead} and ${t.kind} = 'messages.new'`),
    // One mention notification per member per message, however often the flush is retried.
    uniqueIndex('notifications_mention_key').on(t.userId, t.mentionMessageId).where(sql`${t.kind} = 'mention'`),
  ],
);
