import { type SQL, sql } from 'drizzle-orm';

/** API.md's timestamp format, rendered by the database so both drivers give the same text. */
export const isoTime = (column: SQL | SQL.Aliased | unknown): SQL =>
  sql`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** int8 arrives as a string from postgres.js and as a number or bigint from PGlite. */
export const toNumber = (value: unknown): number => Number(value);

/**
 * API.md's timestamp format from a timestamptz as a driver returns it: a Date (PGlite) or
 * PostgreSQL's text (postgres.js under drizzle's parsers, sessions in UTC:
 * `2026-11-21 12:00:00.123456+00`). Formatting here rather than with to_char keeps the
 * busiest reads cheap for the database; the UTC text is rearranged rather than parsed (a
 * page of history formats a hundred of them), anything else goes through Date.
 */
export function isoFrom(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  const text = String(value);
  if (text.length >= 22 && text.endsWith('+00') && text[10] === ' ') {
    // Milliseconds are truncated, as to_char's MS and Date do.
    const fraction = text.length > 22 ? text.slice(20, -3) : '';
    return `${text.slice(0, 10)}T${text.slice(11, 19)}.${(fraction + '000').slice(0, 3)}Z`;
  }
  return new Date(text).toISOString();
}

/**
 * Array literals for `unnest($n::int4[], ...)` (integers for int4[] and int8[] alike): a batch is a handful of array parameters
 * instead of one parameter per row (drizzle would spread a JS array into a list).
 */
export const intArray = (values: readonly number[]): string => `{${values.join(',')}}`;
/** Text array literal; every element quoted (a NUL never gets this far), `null` as NULL. */
export const textArray = (values: readonly (string | null)[]): string =>
  `{${values.map((v) => (v === null ? 'NULL' : `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`)).join(',')}}`;
