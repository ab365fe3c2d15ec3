/**
 * Redis for the replicas: our own redis-server on a free loopback port (no persistence), or
 * BENCH_REDIS_URL when set, or the system one on 127.0.0.1:6379 when redis-server is missing.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { log } from '../lib/log.js';
import { onCleanup } from './cleanup.js';
import { freePort } from './ports.js';
import { spawnGuarded } from './processes.js';

const REDIS_SERVER = '/usr/bin/redis-server';
const SYSTEM_REDIS = 'redis://127.0.0.1:6379';
const START_TIMEOUT_MS = 10_000;

export interface Redis {
  url: string;
  /** Whether this run started it (and stops it). */
  own: boolean;
  stop(): Promise<void>;
}

export async function startRedis(runDir: string): Promise<Redis> {
  const external = process.env.BENCH_REDIS_URL;
  if (external || !existsSync(REDIS_SERVER)) {
    const url = external ?? SYSTEM_REDIS;
    log(`using the existing Redis at ${url}`);
    return { url, own: false, stop: async () => {} };
  }
  const port = await freePort();
  const dir = join(runDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const server = spawnGuarded(
    'redis-server',
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'],
    { cwd: dir, env: { PATH: process.env.PATH }, logFile: join(runDir, 'redis.log') },
  );
  const stop = onCleanup('redis-server', () => server.stop(5000));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await ping(port))) {
    if (!server.alive || Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server on port ${port} did not start:\n${server.logTail()}`);
    }
    await delay(100);
  }
  log(`redis-server on 127.0.0.1:${port} (pid ${server.pid})`);
  return { url: `redis://127.0.0.1:${port}`, own: true, stop };
}

/** True once the server answers PING. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}
