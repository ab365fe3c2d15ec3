/**
 * Replicas of the service as real processes: `node dist/server.js` with the same Node that
 * runs the bench (process.execPath), each on its own free loopback port.
 */
import { readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { log } from '../lib/log.js';
import { onCleanup } from './cleanup.js';
import { freePort } from './ports.js';
import { type Guarded, spawnGuarded } from './processes.js';

const READY_TIMEOUT_MS = 60_000;
/** The service drains for at most this long on SIGTERM; we SIGKILL a little after. */
const SHUTDOWN_TIMEOUT_MS = 5000;

export interface Replica {
  index: number;
  url: string;
  port: number;
  /** The node process itself (checked through /proc/PID/exe), for memory readings. */
  pid: number;
  process: Guarded;
}

export interface ReplicaSettings {
  root: string;
  runDir: string;
  label: string;
  databaseUrl: string;
  redisUrl: string;
  jwtSecret: string;
}

export async function startReplicas(count: number, settings: ReplicaSettings): Promise<{ replicas: Replica[]; stop: () => Promise<void> }> {
  const replicas: Replica[] = [];
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    await Promise.all(stops.map((s) => s()));
  };
  try {
    for (let index = 0; index < count; index++) {
      const port = await freePort();
      const proc = spawnGuarded(`replica ${index + 1}`, process.execPath, ['--max-semi-space-size=32', 'dist/server.js'], {
        cwd: settings.root,
        logFile: join(settings.runDir, `${settings.label}-replica-${index + 1}.log`),
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          DATABASE_URL: settings.databaseUrl,
          REDIS_URL: settings.redisUrl,
          PORT: String(port),
          HOST: '127.0.0.1',
          NODE_ENV: 'production',
          JWT_SECRET: settings.jwtSecret,
          LOG_LEVEL: 'warn',
          MESSAGE_RATE_LIMIT: '0',
          AUTH_RATE_LIMIT: '0',
          DATA_DIR: join(settings.runDir, 'data'),
          SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
        },
      });
      stops.push(onCleanup(`replica ${index + 1} (pid ${proc.pid})`, () => proc.stop(SHUTDOWN_TIMEOUT_MS + 2000)));
      replicas.push({ index, url: `http://127.0.0.1:${port}`, port, pid: proc.pid, process: proc });
    }
    // Started together, as in a deployment: they migrate under an advisory lock.
    await Promise.all(replicas.map(waitReady));
    const node = realpathSync(process.execPath);
    for (const r of replicas) {
      const exe = readlinkSync(`/proc/${r.pid}/exe`);
      if (exe !== node) throw new Error(`replica ${r.index + 1}: pid ${r.pid} is ${exe}, not ${node}`);
    }
    log(`replicas ready: ${replicas.map((r) => `${r.url} (pid ${r.pid})`).join(', ')}`);
    return { replicas, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Polls GET /readyz until 200; fails early if the process exits. */
async function waitReady(replica: Replica): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (!replica.process.alive) {
      throw new Error(`replica ${replica.index + 1} exited during start-up:\n${replica.process.logTail()}`);
    }
    try {
      const res = await fetch(`${replica.url}/readyz`, { signal: AbortSignal.timeout(2000) });
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) return;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await delay(200);
  }
  throw new Error(`replica ${replica.index + 1} not ready after ${READY_TIMEOUT_MS / 1000} s (${last}); log ${replica.process.logFile}:\n${replica.process.logTail()}`);
}
