import { type SQL, sql } from 'drizzle-orm';

/** API.md's timestamp format, rendered by the database so both drivers give the same text. */
export const isoTime = (column: SQL | SQL.Aliased | unknown): SQL =>
  sql`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** int8 arrives as a string from postgres.js and as a number or bigint from PGlite. */
export const toNumber = (value: unknown): number => Number(value);

/**
 * API.md's timestamp format from a timestamptz as a driver returns it: a Date (PGlite) or
 * PostgreSQL's text (postgres.js under drizzle's parsers). Formatting here rather than with
 * to_char keeps the busiest reads cheap for the database.
 */
export const isoFrom = (value: unknown): string =>
  (value instanceof Date ? value : new Date(String(value))).toISOString();
