import { sql } from 'drizzle-orm';
import { integer, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';

export const users = pgTable(
  'users',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    username: text('username').notNull(),
    passwordHash: text('password_hash').notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    // One index serves both case-insensitive uniqueness and prefix search (LIKE 'al%').
    uniqueIndex('users_username_lower_key').using('btree', sql`lower(${t.username}) text_pattern_ops`),
  ],
);

export type UserRow = typeof users.$inferSelect;
