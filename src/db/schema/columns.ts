import { timestamp } from 'drizzle-orm/pg-core';

/** Every timestamp is UTC with time zone; `created_at` is set by the database clock. */
export const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
