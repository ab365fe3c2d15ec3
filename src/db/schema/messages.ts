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
    /** Reaction rows (user, emoji) it holds: a page of history reads reactions only for messages that have some. */
    reactionCount: integer('reaction_count').notNull().default(0),
    /** The message this one answers, of the same conversation (checked at send). */
    replyToId: bigint('reply_to_id', { mode: 'number' }),
    /**
     * Usernames of the members the text mentions (`@name`), resolved by the statement that
     * stores the message; null: none. The notification batcher reads them after commit.
     */
    mentions: text('mentions').array(),
  },
  (t) => [
    index('messages_conversation_id_idx').on(t.conversationId, t.id),
    // Unread counts subtract the deleted messages after a marker; deletions are few, so this stays small.
    index('messages_deleted_idx').on(t.conversationId, t.seq).where(sql`${t.isDeleted}`),
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
  memberAdded: 5,
  memberRemoved: 6,
  memberRole: 7,
  conversationUpdated: 8,
  reactionAdded: 9,
  reactionRemoved: 10,
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
    /** The message a message event is about; null for membership and conversation events. */
    messageId: bigint('message_id', { mode: 'number' }),
    attachmentId: bigint('attachment_id', { mode: 'number' }),
    /** The member a `member.removed` / `member.role` event is about (a removed member's sockets close at it). */
    userId: integer('user_id'),
    /**
     * The event's JSON for membership and conversation events, stored as published (`text`,
     * not `jsonb`, so a replay is byte-for-byte the live event). Message events store none:
     * they render from the current rows, so deleted text never comes back.
     */
    payload: text('payload'),
    /** The conversation's `message_count` once this event committed (see `participants.read_count`). */
    messageCount: bigint('message_count', { mode: 'number' }).notNull().default(0),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ name: 'conversation_events_pkey', columns: [t.conversationId, t.seq] })],
);

export type MessageRow = typeof messages.$inferSelect;

/** One user's reaction with one emoji to one message; removed with the message. */
export const messageReactions = pgTable(
  'message_reactions',
  {
    messageId: bigint('message_id', { mode: 'number' })
      .notNull()
      .references(() => messages.id, { onDelete: 'cascade' }),
    emoji: text('emoji').notNull(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ name: 'message_reactions_pkey', columns: [t.messageId, t.emoji, t.userId] })],
);

/** The versions an edit replaced, erased with the message's text when it is deleted. */
export const messageVersions = pgTable(
  'message_versions',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    messageId: bigint('message_id', { mode: 'number' })
      .notNull()
      .references(() => messages.id, { onDelete: 'cascade' }),
    content: text('content').notNull(),
    /** When this version was written: the message's creation, or the edit that wrote it. */
    writtenAt: timestamp('written_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [index('message_versions_message_idx').on(t.messageId, t.id)],
);

/**
 * How far the search index follows each conversation's event log: the indexer
 * (src/messages/search-indexer.ts) has applied every event up to `indexed_seq` to
 * `message_words`. A conversation without a row has had nothing indexed yet. The indexer
 * locks a conversation's row while it writes its words, so two replicas never index the
 * same conversation at once.
 */
export const searchProgress = pgTable('search_progress', {
  conversationId: integer('conversation_id')
    .primaryKey()
    .references(() => conversations.id, { onDelete: 'cascade' }),
  indexedSeq: bigint('indexed_seq', { mode: 'number' }).notNull().default(0),
});

/**
 * The search index, written by the application (src/messages/search-words.ts normalises and
 * splits the text), so PGlite and PostgreSQL match alike whatever the database locale: one
 * row per distinct word of a live message. Searches walk one word's rows newest first
 * (`message_words_word_idx`, or `message_words_head_idx` for a prefix, by its first three
 * characters) and check the other words of each candidate by the primary key.
 */
export const messageWords = pgTable(
  'message_words',
  {
    // No foreign key: a send writes about ten of these, and a check per row is not free.
    // Deleting a message's text deletes its words (message-writes.ts, users/account.ts).
    messageId: bigint('message_id', { mode: 'number' }).notNull(),
    word: text('word').notNull(),
    conversationId: integer('conversation_id').notNull(),
  },
  (t) => [
    primaryKey({ name: 'message_words_pkey', columns: [t.messageId, t.word] }),
    // Walked backwards (newest first); conversation_id last, so the membership filter reads it
    // from the index, not the table.
    index('message_words_word_idx').on(t.word, t.messageId, t.conversationId),
    index('message_words_head_idx').on(sql`left(${t.word}, 3)`, t.messageId, t.word, t.conversationId),
  ],
);
