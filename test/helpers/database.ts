import { randomBytes } from 'node:crypto';
import postgres from 'postgres';

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
