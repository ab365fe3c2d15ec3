/**
 * Real service processes for multi-replica tests: N replicas of `src/server.ts` sharing one
 * PostgreSQL database (fresh per topology) and one test-started Redis (or Redis Cluster), or
 * the embedded single node (PGlite + in-process bus). Each replica listens on its own loopback
 * port, is ready when `/readyz` says so, and is killed when the test that started it ends.
 *
 * Like the Redis helper, every process runs behind a `sh` watchdog holding the read end of a
 * pipe only this process writes to: if the test process dies without its teardown (tap
 * timeout, SIGKILL), the pipe hits EOF and the watchdog SIGKILLs the replica, so no replica
 * outlives its test file.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import type { Test } from 'tap';
import { configNames } from '../../src/config.js';
import { freshPostgresDatabase } from './database.js';
import { type RedisCluster, type RedisServer, redisCli, startRedisCluster, startRedisServer } from './redis-server.js';
import { freePort } from './ports.js';
import { ABUSE_LIMITS_OFF } from './limits.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HOST = '127.0.0.1';
export const TEST_JWT_SECRET = 'replica-test-secret-0123456789abcdef';
/** Several tsx-compiled processes start at once on two cores in CI: allow for it. */
const READY_TIMEOUT_MS = 60_000;
const READY_POLL_MS = 100;
/** SIGTERM lets a replica drain; past this it is SIGKILLed. */
const STOP_GRACE_MS = 5_000;
/** Kept per replica for failure messages; older output is dropped. */
const LOG_LIMIT_CHARS = 200_000;

/** See redis-server.ts: `$$` is the shell that `exec` turns into node, so the pid node has is the replica's. */
const WATCHDOG = 'exec 3<&0; (read -r line <&3; [ "$line" = exited ] || kill -9 $$ 2>/dev/null) & exec "$0" "$@"';

export type Backend = 'redis' | 'cluster' | 'embedded';

export interface HttpResponse {
  status: number;
  headers: Headers;
  // Tests read fields of whatever came back; their assertions say what shape it must have.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test-side convenience, as in api.ts
  json: any;
  body: string;
}

export interface Replica {
  readonly name: string;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** `ws://127.0.0.1:<port>` */
  readonly wsUrl: string;
  /** True between a successful start and the process's exit. */
  readonly running: boolean;
  readonly pid: number | undefined;
  /** Everything the process wrote to stdout and stderr (all incarnations, newest part). */
  log(): string;
  /** Sends `signal` and resolves once the process has exited. SIGTERM escalates to SIGKILL after a grace period. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the process if it runs, starts a new one on the same port, env and data dir, and waits until ready. */
  restart(): Promise<void>;
  /** JSON over HTTP with an optional bearer token. */
  http(method: string, path: string, options?: { token?: string; body?: unknown; headers?: Record<string, string> }): Promise<HttpResponse>;
  /** Sum of a Prometheus metric's samples (optionally only those whose labels include `labels`). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

export interface TopologyOptions {
  backend: Backend;
  /** Replicas to start (at once). Embedded is always one. Default 2. */
  replicas?: number;
  /** Env for every replica (overrides the defaults). */
  env?: Record<string, string>;
  /** Env for replica `index` (overrides `env`). */
  replicaEnv?: (index: number) => Record<string, string>;
  /** A database of the test's own (e.g. on a PostgreSQL it restarts) instead of a fresh one on the shared server. */
  databaseUrl?: string;
  /** Share a Redis (or cluster) already started in this test instead of starting one. */
  redis?: RedisServer;
  cluster?: RedisCluster;
}

export interface Topology {
  readonly backend: Backend;
  readonly replicas: readonly Replica[];
  readonly jwtSecret: string;
  readonly databaseUrl: string | undefined;
  readonly redis: RedisServer | undefined;
  readonly cluster: RedisCluster | undefined;
  /** Replica `index` modulo the count: suites written for three replicas also run on one. */
  at(index: number): Replica;
  /**
   * Broker-side subscribers of a channel (one per replica subscribed): `PUBSUB NUMSUB`, or on a
   * cluster `PUBSUB SHARDNUMSUB` on the master owning its slot. Undefined for the embedded bus.
   */
  subscribers(channel: string): Promise<number | undefined>;
  /**
   * Resolves once `channel` has exactly `count` broker-side subscribers (bounded). On the
   * in-process bus a listener is attached synchronously when a socket is set up, before the
   * upgrade response reaches the client, so there is nothing to wait for.
   */
  waitSubscribers(channel: string, count: number, timeoutMs?: number): Promise<void>;
}

/**
 * Starts a topology for the duration of `t`: a fresh PostgreSQL database and a Redis (or a
 * 3-master cluster) unless handed in, then all replicas at once (so their migrations race
 * under the advisory lock, as in a real rollout).
 */
export async function startTopology(t: Test, options: TopologyOptions): Promise<Topology> {
  const { backend } = options;
  const count = backend === 'embedded' ? 1 : (options.replicas ?? 2);
  let databaseUrl: string | undefined;
  let redis: RedisServer | undefined;
  let cluster: RedisCluster | undefined;
  const shared: Record<string, string> = {};
  if (backend !== 'embedded') {
    databaseUrl = options.databaseUrl ?? (await freshPostgresDatabase(t, 'replicas'));
    shared.DATABASE_URL = databaseUrl;
    if (backend === 'redis') {
      redis = options.redis ?? (await startRedisServer(t));
      shared.REDIS_URL = redis.url;
    } else {
      cluster = options.cluster ?? (await startRedisCluster(t, { masters: 3 }));
      shared.REDIS_URL = cluster.urls[0]!;
      shared.REDIS_CLUSTER = 'true';
    }
  }
  const replicas = await Promise.all(
    Array.from({ length: count }, (_, index) =>
      startReplica(t, `r${index}`, { ...shared, ...options.env, ...options.replicaEnv?.(index) }),
    ),
  );

  const subscribers = async (channel: string): Promise<number | undefined> => {
    if (redis) return Number((await redisCli(redis.port, 'PUBSUB', 'NUMSUB', channel)).trim().split('\n')[1]);
    if (cluster) {
      const owner = await cluster.ownerOf(channel);
      return Number((await redisCli(owner.port, 'PUBSUB', 'SHARDNUMSUB', channel)).trim().split('\n')[1]);
    }
    return undefined;
  };

  return {
    backend,
    replicas,
    jwtSecret: TEST_JWT_SECRET,
    databaseUrl,
    redis,
    cluster,
    at: (index) => replicas[index % replicas.length]!,
    subscribers,
    async waitSubscribers(channel, expected, timeoutMs = 10_000) {
      if (backend === 'embedded') return;
      const deadline = Date.now() + timeoutMs;
      let seen: number | undefined;
      for (;;) {
        seen = await subscribers(channel);
        if (seen === expected) return;
        if (Date.now() > deadline) throw new Error(`${channel}: ${seen} broker subscribers after ${timeoutMs} ms, expected ${expected}`);
        await delay(25);
      }
    },
  };
}

/** The command that runs the service: compiled `dist/` when it is newer than every source file, else tsx. */
function serviceCommand(): string[] {
  const compiled = join(ROOT, 'dist', 'server.js');
  if (process.env.CHAT_TEST_USE_DIST === '1' && existsSync(compiled) && statSync(compiled).mtimeMs > newestSource(join(ROOT, 'src'))) {
    return [compiled];
  }
  return ['--import=tsx', join(ROOT, 'src', 'server.ts')];
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** The parent's environment minus anything the service or tap would read from it. */
function baseEnv(): Record<string, string> {
  const drop = new Set([...configNames(), 'NODE_OPTIONS']);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || drop.has(name) || /^_?TAP/i.test(name)) continue;
    env[name] = value;
  }
  return env;
}

/** Starts one replica for the duration of `t` and waits until it is ready. */
export async function startReplica(t: Test, name: string, env: Record<string, string>): Promise<Replica> {
  const dataDir = mkdtempSync(join(tmpdir(), `chat-${name}-`));
  let port = 0;
  let child: ChildProcess | undefined;
  let running = false;
  let output = '';
  const append = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > LOG_LIMIT_CHARS * 1.5) output = output.slice(-LOG_LIMIT_CHARS);
  };

  const spawnOnce = async (): Promise<void> => {
    const fullEnv: Record<string, string> = {
      ...baseEnv(),
      HOST,
      PORT: String(port),
      PUBLIC_URL: `http://${HOST}:${port}`,
      JWT_SECRET: TEST_JWT_SECRET,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      DATA_DIR: dataDir,
      // The message and auth limits on, as in production, high enough that the tests' own
      // traffic is never limited (the Redis limiter runs, and fails open, in the fault tests).
      MESSAGE_RATE_LIMIT: '1000000',
      AUTH_RATE_LIMIT: '1000000',
      ...ABUSE_LIMITS_OFF,
      SHUTDOWN_TIMEOUT_MS: '3000',
      // Several files run at once against one PostgreSQL (max_connections 100): keep pools small.
      DATABASE_POOL_SIZE: '4',
      ...env,
    };
    output += `--- ${name} starting on port ${port} (${new Date().toISOString()})\n`;
    const started = spawn('/bin/sh', ['-c', WATCHDOG, process.execPath, ...serviceCommand()], {
      cwd: ROOT,
      env: fullEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    started.stdin?.on('error', () => {});
    started.stdout?.on('data', append);
    started.stderr?.on('data', append);
    child = started;
    const exited = once(started, 'exit').then(([code, signal]) => {
      running = false;
      output += `--- ${name} exited (${signal ?? code}) (${new Date().toISOString()})\n`;
      // Tells the watchdog not to kill a pid that may since have been reused.
      started.stdin?.end('exited\n');
      return { code, signal };
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let gone = false;
    void exited.then(() => (gone = true));
    for (;;) {
      if (gone) throw new Error(`${name} exited before it was ready:\n${output.slice(-20_000)}`);
      try {
        const response = await fetch(`http://${HOST}:${port}/readyz`, { signal: AbortSignal.timeout(2_000) });
        if (response.status === 200) break;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) {
        await stopChild(started);
        throw new Error(`${name} not ready within ${READY_TIMEOUT_MS} ms:\n${output.slice(-20_000)}`);
      }
      await delay(READY_POLL_MS);
    }
    running = true;
  };

  // A free port can be taken between probing and binding; only the first start may move.
  for (let attempt = 1; ; attempt++) {
    port = await freePort(HOST);
    try {
      await spawnOnce();
      break;
    } catch (error) {
      if (attempt >= 3 || !/EADDRINUSE/.test(String(error))) {
        rmSync(dataDir, { recursive: true, force: true });
        throw error;
      }
    }
  }

  const url = `http://${HOST}:${port}`;
  const kill = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const current = child;
    if (!current) return;
    await stopChild(current, signal);
  };

  const replica: Replica = {
    name,
    port,
    url,
    wsUrl: `ws://${HOST}:${port}`,
    get running() {
      return running;
    },
    get pid() {
      return running ? child?.pid : undefined;
    },
    log: () => output,
    kill,
    async restart() {
      await kill('SIGTERM');
      await spawnOnce();
    },
    async http(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      if (options.body !== undefined) headers['content-type'] = 'application/json';
      const response = await fetch(`${url}${path}`, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        signal: AbortSignal.timeout(15_000),
      });
      const body = await response.text();
      let json: unknown;
      if ((response.headers.get('content-type') ?? '').includes('json') && body) json = JSON.parse(body);
      return { status: response.status, headers: response.headers, json, body };
    },
    async metric(metricName, labels = {}) {
      const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
      return sumMetric(await response.text(), metricName, labels);
    },
  };

  t.teardown(async () => {
    if (!t.passing()) t.comment(`--- ${name} log (last 8000 chars) ---\n${output.slice(-8_000)}`);
    // KEEP_REPLICA_LOGS=DIR keeps every replica's whole log, passing or not: for a failure seen
    // once in many runs, where the last 8000 characters of a failing one are not enough.
    const keep = process.env.KEEP_REPLICA_LOGS;
    if (keep) writeFileSync(join(keep, `${name}-${process.pid}-${Date.now()}.log`), output);
    await kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  });
  return replica;
}

/** Sends `signal` (SIGKILL after a grace period if it was gentler) and waits for the exit. */
async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = signal === 'SIGKILL' ? undefined : setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

/** Sums the samples of `name` in Prometheus text whose labels include every `labels` pair. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const labelText = match[2] ?? '';
    const ok = Object.entries(labels).every(([key, value]) => labelText.includes(`${key}="${value}"`));
    if (ok) sum += Number(match[3]);
  }
  return sum;
}

/** Polls `check` until it returns true (bounded); the error names `what`. */
export async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(25);
  }
}

