import { sql } from 'drizzle-orm';
import { bigint, index, integer, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';

export const users = pgTable(
  'users',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    username: text('username').notNull(),
    passwordHash: text('password_hash').notNull(),
    createdAt: createdAt(),
    /**
     * Tokens issued at or before this time (ms since the epoch) are refused: logout-all and a
     * password change move it forward. 0: every unexpired token counts.
     */
    tokensValidAfterMs: bigint('tokens_valid_after_ms', { mode: 'number' }).notNull().default(0),
    /** Set when the account is deleted: the row stays so the username is never given again. */
    deletedAt: timestamp('deleted_at', { withTimezone: true, mode: 'date' }),
    /**
     * When the user was last online (presence): written when they come online and when they
     * go offline, so it survives Redis losing its keys. Null: never connected.
     */
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    // One index serves both case-insensitive uniqueness and prefix search (LIKE 'al%').
    uniqueIndex('users_username_lower_key').using('btree', sql`lower(${t.username}) text_pattern_ops`),
  ],
);

export type UserRow = typeof users.$inferSelect;

/** Single tokens refused before their expiry (logout). Rows past `expires_at` mean nothing and are swept. */
export const revokedTokens = pgTable(
  'revoked_tokens',
  {
    jti: text('jti').primaryKey(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [index('revoked_tokens_user_idx').on(t.userId, t.expiresAt)],
);
