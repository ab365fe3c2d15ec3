/**
 * A throwaway PostgreSQL 15 server of a test's own (never the shared one on 5432), so a test
 * can stop, kill and restart it: `initdb` into a temp dir, then `postgres` in the foreground
 * on a free loopback port, run as the `postgres` OS user when the test runs as root (initdb
 * refuses root). Like redis-server.ts, the server runs behind a `sh` watchdog holding a pipe
 * only this process writes to: if the test process dies without its teardown, the watchdog
 * SIGKILLs the server. Removed with the test that started it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import postgres from 'postgres';
import type { Test } from 'tap';
import { freePort } from './ports.js';

const BIN = '/usr/lib/postgresql/15/bin';
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;
const WATCHDOG = '(read -r line <&3; [ "$line" = exited ] || kill -9 $$) 2>/dev/null & exec "$0" "$@"';
const execFileAsync = promisify(execFile);

/** The OS user the server runs as: postgres when we are root, else ourselves. */
const owner = (): { uid: number; gid: number } | undefined => (process.getuid?.() === 0 ? { uid: 101, gid: 104 } : undefined);

export interface PostgresServer {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly url: string;
  readonly running: boolean;
  /** SIGINT (fast shutdown), or SIGKILL (a crash); resolves once it has exited. */
  stop(mode?: 'fast' | 'kill'): Promise<void>;
  /** Starts it again on the same port and data dir; resolves once it accepts connections. */
  start(): Promise<void>;
  /** The data dir (for a standby's base backup). */
  readonly dataDir: string;
}

async function run(command: string, args: string[]): Promise<string> {
  const user = owner();
  const { stdout } = await execFileAsync(join(BIN, command), args, { timeout: 60_000, ...(user ?? {}) });
  return stdout;
}

/**
 * Starts a PostgreSQL server for the duration of `t`. `standbyOf` makes it a streaming
 * standby of that server (pg_basebackup -R), promotable with `promote(server)`.
 */
export async function startPostgresServer(t: Test, options: { standbyOf?: PostgresServer } = {}): Promise<PostgresServer> {
  const root = mkdtempSync(join(tmpdir(), 'chat-pg-'));
  const user = owner();
  if (user) chownSync(root, user.uid, user.gid);
  const dataDir = join(root, 'data');
  if (options.standbyOf) {
    await run('pg_basebackup', ['-h', HOST, '-p', String(options.standbyOf.port), '-U', 'postgres', '-D', dataDir, '-R', '-X', 'stream', '-c', 'fast']);
  } else {
    await run('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  }
  let port = await freePort(HOST);
  let child: ChildProcess | undefined;
  let output = '';

  const args = (): string[] => [
    '-D', dataDir, '-p', String(port), '-k', root, '-c', `listen_addresses=${HOST}`,
    // fsync off is safe for a process crash (the OS keeps the pages); synchronous_commit stays
    // on: off, a SIGKILL loses commits already acknowledged, which is what the tests check.
    '-c', 'fsync=off',
    '-c', 'max_connections=60', '-c', 'shared_buffers=32MB', '-c', 'wal_level=replica',
    '-c', 'max_wal_senders=4', '-c', 'hot_standby=on', '-c', 'logging_collector=off',
  ];

  const start = async (): Promise<void> => {
    const started = spawn('/bin/sh', ['-c', WATCHDOG, join(BIN, 'postgres'), ...args()], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      ...(user ?? {}),
    });
    (started.stdio[3] as Writable | null)?.on('error', () => {});
    const append = (chunk: Buffer): void => void (output = (output + chunk.toString()).slice(-20_000));
    started.stdout?.on('data', append);
    started.stderr?.on('data', append);
    child = started;
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (started.exitCode !== null || started.signalCode !== null) throw new Error(`postgres exited before it was ready:\n${output}`);
      const probe = postgres({ host: HOST, port, user: 'postgres', database: 'postgres', max: 1, connect_timeout: 1, onnotice: () => {} });
      try {
        await probe`select 1`;
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`postgres not ready within ${START_TIMEOUT_MS} ms:\n${output}`);
        await delay(100);
      } finally {
        await probe.end({ timeout: 1 });
      }
    }
  };

  const stop = async (mode: 'fast' | 'kill' = 'fast'): Promise<void> => {
    const current = child;
    child = undefined;
    if (!current) return;
    if (current.exitCode === null && current.signalCode === null) {
      const exited = once(current, 'exit');
      current.kill(mode === 'kill' ? 'SIGKILL' : 'SIGINT');
      const timer = setTimeout(() => current.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    (current.stdio[3] as Writable | null)?.end('exited\n');
    current.stdout?.destroy();
    current.stderr?.destroy();
    // A SIGKILLed postmaster leaves its backends running until they notice; wait for the port.
    if (mode === 'kill') await delay(500);
  };

  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      break;
    } catch (error) {
      await stop('kill');
      if (attempt >= 3 || !/could not bind|Address already in use/.test(String(error))) {
        rmSync(root, { recursive: true, force: true });
        throw error;
      }
      port = await freePort(HOST);
    }
  }

  t.teardown(async () => {
    await stop('kill');
    rmSync(root, { recursive: true, force: true });
  });
  return {
    port,
    url: `postgres://postgres@${HOST}:${port}/postgres`,
    get running() {
      return child !== undefined;
    },
    stop,
    start,
    dataDir,
  };
}

/** Promotes a standby to primary and waits until it accepts writes. */
export async function promote(server: PostgresServer): Promise<void> {
  await run('pg_ctl', ['promote', '-D', server.dataDir, '-w', '-t', '30']);
  const client = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    for (let i = 0; i < 100; i++) {
      const [row] = await client`select pg_is_in_recovery() as recovering`;
      if (!row?.recovering) return;
      await delay(100);
    }
    throw new Error('standby still in recovery after promote');
  } finally {
    await client.end({ timeout: 1 });
  }
}

/**
 * Makes `primary` replicate synchronously to its standby (`synchronous_standby_names = '*'`)
 * and resolves once the standby streams in that mode: from then on a commit is acknowledged
 * only once the standby has flushed it, so a failover loses no acknowledged write. (Set after
 * the standby exists: before, every commit would wait for it.)
 */
export async function replicateSynchronously(primary: PostgresServer, timeoutMs = 30_000): Promise<void> {
  const client = postgres(primary.url, { max: 1, onnotice: () => {} });
  try {
    await client`alter system set synchronous_standby_names = '*'`;
    await client`select pg_reload_conf()`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await client`select 1 from pg_stat_replication where sync_state = 'sync' and state = 'streaming'`;
      if (rows.length > 0) return;
      if (Date.now() > deadline) throw new Error(`no synchronous standby streaming from port ${primary.port} within ${timeoutMs} ms`);
      await delay(50);
    }
  } finally {
    await client.end({ timeout: 1 });
  }
}

/** Creates a database on `server` and returns its URL (optionally with extra hosts for failover). */
export async function createDatabaseOn(server: PostgresServer, name: string): Promise<string> {
  const admin = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end({ timeout: 1 });
  }
  return `postgres://postgres@${HOST}:${server.port}/${name}`;
}
