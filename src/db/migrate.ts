import { join } from 'node:path';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { projectRoot } from '../project-root.js';

/** The committed migrations (drizzle-kit's output). */
const migrationsFolder = (): string => join(projectRoot(), 'drizzle');

/** Any constant will do, as long as every replica uses the same one. */
const MIGRATION_LOCK_KEY = 7_240_113_001;

/**
 * Applies pending migrations on PostgreSQL under a session advisory lock held on a connection
 * of its own, so N replicas starting at once apply them exactly once and the others wait.
 */
export async function migratePostgresLocked(url: string, options: postgres.Options<Record<string, never>> = {}): Promise<void> {
  const client = postgres(url, { ...options, max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    await migratePostgres(drizzlePostgres({ client }), { migrationsFolder: migrationsFolder() });
    await client`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
  } finally {
    await client.end({ timeout: 5 });
  }
}

/** PGlite belongs to this one process: no other migrator can race it. */
export const migrateEmbedded = <S extends Record<string, unknown>>(db: PgliteDatabase<S>): Promise<void> =>
  migratePglite(db, { migrationsFolder: migrationsFolder() });
