import { randomBytes } from 'node:crypto';
import { fillPlaceholders, type SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { createDatabase, type DatabaseHandle, type Prepared, type StatementOptions } from '../../src/db/client.js';
import * as schema from '../../src/db/schema/index.js';

/** The server that test databases are created on (trust auth on this machine and in CI). */
export const ADMIN_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh PostgreSQL database for one test file, dropped when the test ends. */
export async function freshPostgresDatabase(t: Teardown, label = 'test'): Promise<string> {
  const name = `chat_${label}_${randomBytes(6).toString('hex')}`;
  const admin = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  t.teardown(async () => {
    const cleanup = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => {} });
    await cleanup.unsafe(`drop database if exists "${name}" with (force)`);
    await cleanup.end();
  });
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface RecordedQuery {
  sql: string;
  params: unknown[];
  /** Sent with `indexOnly` (db/client.ts: a batch statement, on the connections of PLANNED_SETTINGS). */
  indexOnly?: boolean;
}

/**
 * The service's own PostgreSQL `DatabaseHandle` (src/db/client.ts, so statements run exactly as
 * the service sends them), with every statement recorded with its parameters: tests can then
 * EXPLAIN the SQL the service really runs instead of a hand-copied version of it. Raw
 * statements (`query`, `prepare`, `transaction`) are recorded on their way in, prepared ones
 * with the values of each call; query-builder statements
 * (`db`) go through a drizzle instance of its own whose logger records them.
 */
export function recordingPostgres(url: string, poolSize = 5): { database: DatabaseHandle; queries: RecordedQuery[] } {
  const queries: RecordedQuery[] = [];
  const inner = createDatabase({ url, embeddedDir: '', poolSize });
  const dialect = new PgDialect();
  const record = (statement: SQL, options?: StatementOptions) => {
    const { sql: text, params } = dialect.sqlToQuery(statement);
    queries.push(options?.indexOnly ? { sql: text, params, indexOnly: true } : { sql: text, params });
  };
  const builderClient = postgres(url, { max: 2, onnotice: () => {}, connect_timeout: 5 });
  const db = drizzlePostgres({
    client: builderClient,
    schema,
    logger: { logQuery: (query: string, params: unknown[]) => void queries.push({ sql: query, params }) },
  });
  const database: DatabaseHandle = {
    ...inner,
    db,
    query: (statement, options) => (record(statement, options), inner.query(statement, options)),
    prepare: <T extends Record<string, unknown>>(statement: SQL, options?: StatementOptions): Prepared<T> => {
      const run = inner.prepare<T>(statement, options);
      const { sql: text, params } = dialect.sqlToQuery(statement);
      return (values) => (queries.push({ sql: text, params: fillPlaceholders(params, values), ...(options?.indexOnly ? { indexOnly: true } : {}) }), run(values));
    },
    transaction: (work) => inner.transaction((query) => work((statement) => (record(statement), query(statement)))),
    close: async () => {
      await Promise.all([inner.close(), builderClient.end({ timeout: 5 })]);
    },
  };
  return { database, queries };
}
