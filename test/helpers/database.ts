import { randomBytes } from 'node:crypto';
import type { SQL } from 'drizzle-orm';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { DatabaseHandle } from '../../src/db/client.js';
import { migratePostgresLocked } from '../../src/db/migrate.js';
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
}

/**
 * A PostgreSQL `DatabaseHandle` like the service's own (src/db/client.ts), except that every
 * statement drizzle sends is recorded with its parameters: tests can then EXPLAIN exactly the
 * SQL the service runs instead of a hand-copied version of it.
 */
export function recordingPostgres(url: string, poolSize = 5): { database: DatabaseHandle; queries: RecordedQuery[] } {
  const queries: RecordedQuery[] = [];
  const client = postgres(url, { max: poolSize, onnotice: () => {}, connect_timeout: 5 });
  const db = drizzlePostgres({
    client,
    schema,
    logger: { logQuery: (query: string, params: unknown[]) => void queries.push({ sql: query, params }) },
  });
  type Row = Record<string, unknown>;
  const database: DatabaseHandle = {
    db,
    kind: 'postgres',
    query: async <T extends Row>(statement: SQL): Promise<T[]> => (await db.execute<T>(statement)) as T[],
    transaction: (work) =>
      db.transaction((tx) => work(async <T extends Row>(statement: SQL) => (await tx.execute<T>(statement)) as T[])),
    migrate: () => migratePostgresLocked(url),
    ping: async () => {
      try {
        await db.execute('select 1');
        return true;
      } catch {
        return false;
      }
    },
    close: () => client.end({ timeout: 5 }),
  };
  return { database, queries };
}
