import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppOptions } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createDatabase, type DatabaseHandle } from '../../src/db/client.js';
import { freshPostgresDatabase } from './database.js';
import { ABUSE_LIMITS_OFF } from './limits.js';

export type DatabaseKind = 'postgres' | 'pglite';

interface Test {
  teardown(fn: () => unknown): void;
}

/** A temp dir removed when the test ends. */
export function tempDir(t: Test, prefix = 'chat-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Configuration for a test app: valid defaults, a temp data dir, rate limits off unless asked. */
export function testConfig(t: Test, env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    JWT_SECRET: 'test-secret-0123456789abcdef',
    DATA_DIR: tempDir(t),
    LOG_LEVEL: 'silent',
    MESSAGE_RATE_LIMIT: '0',
    AUTH_RATE_LIMIT: '0',
    ...ABUSE_LIMITS_OFF,
    PUBLIC_URL: 'http://chat.test',
    ...env,
  });
}

/** A migrated database of the given kind, closed when the test ends. */
export async function testDatabase(t: Test, kind: DatabaseKind): Promise<{ database: DatabaseHandle; url?: string }> {
  if (kind === 'pglite') {
    const database = createDatabase({ embeddedDir: 'memory://', poolSize: 1 });
    await database.migrate();
    t.teardown(() => database.close());
    return { database };
  }
  const url = await freshPostgresDatabase(t);
  const database = createDatabase({ url, embeddedDir: '', poolSize: 10 });
  await database.migrate();
  t.teardown(() => database.close());
  return { database, url };
}

export interface TestAppOptions extends Partial<Omit<AppOptions, 'config'>> {
  env?: Record<string, string>;
}

/** fastify/demo's helper: a ready app, closed at teardown. */
export async function buildTestApp(t: Test, options: TestAppOptions = {}): Promise<FastifyInstance> {
  const { env, ...parts } = options;
  const app = await buildApp({ config: testConfig(t, { MIGRATE_ON_START: 'false', ...env }), logger: false, ...parts });
  t.teardown(() => app.close());
  await app.ready();
  return app;
}
