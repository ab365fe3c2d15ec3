import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';
import { users } from './users.js';

export const ConversationKind = { direct: 'direct', group: 'group' } as const;
export type ConversationKind = (typeof ConversationKind)[keyof typeof ConversationKind];

export const MemberRole = { owner: 'owner', admin: 'admin', member: 'member' } as const;
export type MemberRole = (typeof MemberRole)[keyof typeof MemberRole];

export const conversations = pgTable(
  'conversations',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    createdById: integer('created_by_id').notNull().references(() => users.id),
    createdAt: createdAt(),
    /** The `seq` of the newest conversation event; the row lock on it serialises writers. */
    lastSeq: bigint('last_seq', { mode: 'number' }).notNull().default(0),
    lastMessageAt: timestamp('last_message_at', { withTimezone: true, mode: 'date' }),
    title: text('title'),
    kind: text('kind').notNull().default(ConversationKind.group).$type<ConversationKind>(),
    /** `<smaller user id>:<larger user id>` for a direct conversation: one per pair. */
    directKey: text('direct_key'),
    /** Kept with every membership change, so no view counts thousands of members. */
    memberCount: integer('member_count').notNull().default(0),
    /** Messages ever created here (deleted ones included): unread counts are differences of it. */
    messageCount: bigint('message_count', { mode: 'number' }).notNull().default(0),
  },
  (t) => [
    uniqueIndex('conversations_direct_key').on(t.directKey).where(sql`${t.directKey} is not null`),
    check('conversations_kind_check', sql`${t.kind} in ('direct', 'group')`),
  ],
);

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
    role: text('role').notNull().default(MemberRole.member).$type<MemberRole>(),
    /** The member's read marker: only moves forward, never past the conversation's `last_seq`. */
    lastReadSeq: bigint('last_read_seq', { mode: 'number' }).notNull().default(0),
    /**
     * The conversation's `message_count` as of `last_read_seq` (messages with a seq at or below
     * it): `message_count - read_count` is what arrived since, without counting rows.
     */
    readCount: bigint('read_count', { mode: 'number' }).notNull().default(0),
    /**
     * The conversation's newest activity as this member's inbox orders it: kept by the
     * notification flush for conversations of up to INBOX_TRACKED_MEMBERS members (so the
     * inbox's first page is an index range, not a sort of every membership), and set at joining.
     */
    activityAt: timestamp('activity_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /**
     * Set on every membership of a conversation above INBOX_TRACKED_MEMBERS members: their
     * `activity_at` is not kept (one message would write thousands of rows); the inbox reads
     * the conversation's own activity for these few instead.
     */
    large: boolean('large').notNull().default(false),
  },
  (t) => [
    primaryKey({ name: 'participants_pkey', columns: [t.conversationId, t.userId] }),
    // A member's inbox in activity order (and every lookup of a user's memberships).
    index('participants_inbox_idx').on(t.userId, t.activityAt, t.conversationId),
    index('participants_large_idx').on(t.userId).where(sql`${t.large}`),
    // Members in joining order (the participant names, owner succession) without a sort.
    index('participants_joined_idx').on(t.conversationId, t.joinedAt, t.userId),
    check('participants_role_check', sql`${t.role} in ('owner', 'admin', 'member')`),
  ],
);

export type ConversationRow = typeof conversations.$inferSelect;
