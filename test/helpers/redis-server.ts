/**
 * Throwaway Redis servers for tests: a single instance, a replica of one, a Sentinel, and a
 * small Redis Cluster, each on free loopback ports in a temp dir, torn down with the test that
 * started them.
 *
 * Every redis-server runs behind a tiny `sh` watchdog holding the read end of a pipe whose
 * write end only this process has: if the test process dies without running its teardown
 * (timeout, SIGKILL), the pipe hits EOF and the watchdog SIGKILLs the server, so a server
 * never outlives the test.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { freePort } from './ports.js';

const REDIS_SERVER = '/usr/bin/redis-server';
const REDIS_CLI = '/usr/bin/redis-cli';
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;
const CLUSTER_READY_TIMEOUT_MS = 30_000;
const CLUSTER_POLL_MS = 50;

/**
 * The pipe is the child's fd 3 (node destroys a child's stdin on exit, which would look like
 * the test process dying). `$$` in the subshell is the outer shell, which `exec` turns into
 * redis-server itself, so the pid node sees (and signals) is the server's. EOF without the
 * `exited` line means the test process is gone: kill the server and remove its dir. The line
 * says the server was stopped properly (its pid may be reused by now; a restart needs the dir).
 */
const WATCHDOG =
  '(read -r line <&3; [ "$line" = exited ] || { kill -9 $$; rm -rf "$REDIS_TEST_DIR"; }) 2>/dev/null & exec "$0" "$@"';

const execFileAsync = promisify(execFile);

/** One running (or restartable) redis-server. */
export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** SIGTERM, then SIGKILL if it has not exited within a few seconds. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL: a crash, nothing flushed or handed over. */
  kill(): Promise<void>;
  /** Stops the process and starts a new one on the same port and data dir. */
  restart(): Promise<void>;
}

/** A Redis Cluster of `masters` masters and no replicas. */
export interface RedisCluster {
  readonly nodes: readonly RedisServer[];
  readonly urls: readonly string[];
  /** The master serving the slot of `key` (a key or shard channel name). */
  ownerOf(key: string): Promise<RedisServer>;
}

/** Runs one redis-cli command against a server and returns its raw (non-TTY) output. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(REDIS_CLI, ['-h', HOST, '-p', String(port), ...args], {
    timeout: 10_000,
  });
  return stdout;
}

/** Starts a standalone redis-server for the duration of `t`. */
export async function startRedisServer(t: Test): Promise<RedisServer> {
  return startManaged(t, 'redis-', async () => []);
}

/** Starts a redis-server replicating from `primary` (`--replicaof`) and waits until its link is up. */
export async function startRedisReplica(t: Test, primary: RedisServer): Promise<RedisServer> {
  const replica = await startManaged(t, 'redis-replica-', async () => ['--replicaof', HOST, String(primary.port)]);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await redisCli(replica.port, 'INFO', 'replication')).includes('master_link_status:up')) {
    if (Date.now() > deadline) throw new Error(`replica on ${replica.port} not linked to ${primary.port}`);
    await delay(CLUSTER_POLL_MS);
  }
  return replica;
}

export interface SentinelOptions {
  /** The master name the Sentinels monitor. */
  name: string;
  primary: RedisServer;
  quorum?: number;
  /** How long the primary may not answer before a Sentinel calls it down (short in tests). */
  downAfterMs?: number;
  failoverTimeoutMs?: number;
}

/** A Sentinel (`redis-server <conf> --sentinel`) on its own port, monitoring `primary`. */
export async function startSentinel(t: Test, options: SentinelOptions): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-sentinel-'));
  const config = join(dir, 'sentinel.conf');
  const port = await freePort(HOST);
  // Sentinel rewrites its config file (the epochs, the replicas and peers it found).
  await writeFile(
    config,
    [
      `port ${port}`,
      `bind ${HOST}`,
      `dir ${dir}`,
      `sentinel monitor ${options.name} ${HOST} ${options.primary.port} ${options.quorum ?? 2}`,
      `sentinel down-after-milliseconds ${options.name} ${options.downAfterMs ?? 1_000}`,
      `sentinel failover-timeout ${options.name} ${options.failoverTimeoutMs ?? 5_000}`,
      `sentinel parallel-syncs ${options.name} 1`,
      '',
    ].join('\n'),
  );
  const args = [config, '--sentinel', '--logfile', ''];
  let current: ChildProcess | undefined = await spawnServer(dir, args, '+monitor master');
  const stop = async (): Promise<void> => {
    const child = current;
    current = undefined;
    if (child) await stopServer(child);
  };
  t.teardown(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    port,
    url: `redis://${HOST}:${port}`,
    stop,
    kill: async () => {
      const child = current;
      current = undefined;
      if (child) await stopServer(child, 'SIGKILL');
    },
    restart: async () => {
      await stop();
      current = await spawnServer(dir, args, '+monitor master');
    },
  };
}

/** Starts `masters` cluster-enabled servers, joins them into one cluster and waits until it is ok. */
export async function startRedisCluster(t: Test, { masters = 3 } = {}): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  for (let i = 0; i < masters; i++) {
    nodes.push(
      await startManaged(t, 'redis-cluster-', async () => [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', 'nodes.conf',
        // Ephemeral ports are above 32767, so the default bus port (port + 10000) may not exist.
        '--cluster-port', String(await freePort(HOST)),
        // Long enough that a restart in a test never gets a master marked as failed.
        '--cluster-node-timeout', '15000',
      ]),
    );
  }
  await execFileAsync(
    REDIS_CLI,
    [
      '--cluster', 'create',
      ...nodes.map((node) => `${HOST}:${node.port}`),
      '--cluster-replicas', '0',
      '--cluster-yes',
    ],
    { timeout: CLUSTER_READY_TIMEOUT_MS },
  );
  await waitForClusterOk(nodes, masters);
  return {
    nodes,
    urls: nodes.map((node) => node.url),
    ownerOf: (key) => ownerOf(nodes, key),
  };
}

/**
 * `redis-cli --cluster create` returns once the nodes agree on the configuration, but each node
 * turns its own `cluster_state` to ok on its own schedule, so poll every node until all do.
 */
async function waitForClusterOk(nodes: readonly RedisServer[], masters: number): Promise<void> {
  const deadline = Date.now() + CLUSTER_READY_TIMEOUT_MS;
  for (;;) {
    const infos = await Promise.all(nodes.map((node) => redisCli(node.port, 'CLUSTER', 'INFO')));
    const ok = infos.every(
      (info) =>
        info.includes('cluster_state:ok') &&
        info.includes('cluster_slots_assigned:16384') &&
        info.includes(`cluster_known_nodes:${masters}`),
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`cluster not ok after ${CLUSTER_READY_TIMEOUT_MS} ms:\n${infos.join('\n')}`);
    await delay(CLUSTER_POLL_MS);
  }
}

async function ownerOf(nodes: readonly RedisServer[], key: string): Promise<RedisServer> {
  const first = nodes[0];
  if (!first) throw new Error('empty cluster');
  const slot = Number((await redisCli(first.port, 'CLUSTER', 'KEYSLOT', key)).trim());
  // Lines: <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot|range>...
  for (const line of (await redisCli(first.port, 'CLUSTER', 'NODES')).split('\n')) {
    const [, address, flags, , , , , , ...ranges] = line.trim().split(' ');
    if (!address || !flags?.includes('master')) continue;
    const owns = ranges.some((range) => {
      const [from, to = from] = range.split('-').map(Number);
      return from !== undefined && to !== undefined && slot >= from && slot <= to;
    });
    if (!owns) continue;
    const port = Number(address.split('@')[0]?.split(':').pop());
    const node = nodes.find((candidate) => candidate.port === port);
    if (node) return node;
  }
  throw new Error(`no master owns slot ${slot} of ${key}`);
}

/**
 * A server whose process can be replaced; registers its own teardown. `extraArgs` is asked
 * again when a first start has to move to other ports; a restart reuses the last answer.
 */
async function startManaged(t: Test, prefix: string, extraArgs: () => Promise<string[]>): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  let current: ChildProcess | undefined;
  let port = 0;
  let extra: string[] = [];
  const args = (): string[] => [
    '--port', String(port),
    '--bind', HOST,
    '--dir', dir,
    '--save', '',
    '--appendonly', 'no',
    '--daemonize', 'no',
    '--logfile', '',
    ...extra,
  ];

  // A free port can be taken between probing and binding; only the first start may move.
  for (let attempt = 1; ; attempt++) {
    port = await freePort(HOST);
    extra = await extraArgs();
    try {
      current = await spawnServer(dir, args());
      break;
    } catch (err) {
      if (attempt >= 3 || !String(err).includes('Address already in use')) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  const stop = async (): Promise<void> => {
    const child = current;
    current = undefined;
    if (child) await stopServer(child);
  };
  const server: RedisServer = {
    port,
    url: `redis://${HOST}:${port}`,
    stop,
    kill: async () => {
      const child = current;
      current = undefined;
      if (child) await stopServer(child, 'SIGKILL');
    },
    restart: async () => {
      await stop();
      current = await spawnServer(dir, args());
    },
  };
  t.teardown(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });
  return server;
}

/** Spawns redis-server under the watchdog and resolves once it accepts connections. */
async function spawnServer(dir: string, args: string[], readyLine = 'Ready to accept connections'): Promise<ChildProcess> {
  const child = spawn('/bin/sh', ['-c', WATCHDOG, REDIS_SERVER, ...args], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, REDIS_TEST_DIR: dir },
  });
  // The watchdog may be gone already (EPIPE); nothing to do about it then.
  watchdogPipe(child)?.on('error', () => {});
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`redis-server did not start within ${START_TIMEOUT_MS} ms:\n${output}`));
    }, START_TIMEOUT_MS);
    // Keeps draining for the server's lifetime (a full pipe would block it); only a tail is kept.
    const onData = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-20_000);
      if (output.includes(readyLine)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code ?? signal}) before it was ready:\n${output}`));
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  try {
    await ready;
  } catch (err) {
    await stopServer(child);
    throw err;
  }
  return child;
}

async function stopServer(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }
  watchdogPipe(child)?.end('exited\n');
  child.stdout?.destroy();
  child.stderr?.destroy();
}

function watchdogPipe(child: ChildProcess): Writable | undefined {
  const pipe = child.stdio[3];
  return pipe instanceof Writable ? pipe : undefined;
}

