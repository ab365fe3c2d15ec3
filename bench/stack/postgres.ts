/** A fresh `bench_<random>` database on the local PostgreSQL, dropped at the end. */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { log } from '../lib/log.js';
import { onCleanup } from './cleanup.js';

export const ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function admin(statement: string): Promise<void> {
  const sql = postgres(ADMIN_URL, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await sql.unsafe(statement);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export interface Database {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function createDatabase(): Promise<Database> {
  const name = `bench_${randomBytes(5).toString('hex')}`;
  await admin(`create database "${name}"`);
  const drop = onCleanup(`database ${name}`, async () => {
    // WITH (FORCE): a replica killed mid-query may leave a backend behind for a moment.
    await admin(`drop database if exists "${name}" with (force)`);
    log(`dropped database ${name}`);
  });
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  log(`created database ${name}`);
  return { name, url: url.toString(), drop };
}
