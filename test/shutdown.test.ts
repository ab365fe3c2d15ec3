/**
 * Graceful shutdown of the real process: `node --import=tsx src/server.ts` on a fresh
 * PostgreSQL database gets SIGTERM while a WebSocket is open and a register request is still
 * uploading its body (a slow client: the request is in flight until the body ends).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { tempDir } from './helpers/app.js';
import { randomName } from './helpers/api.js';
import { freshPostgresDatabase } from './helpers/database.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Readiness fails this long before the listener closes: the window the test observes. */
const SHUTDOWN_DELAY_MS = 1500;
const SHUTDOWN_TIMEOUT_MS = 8000;
const START_TIMEOUT_MS = 30_000;
const POLL_INTERVAL_MS = 20;

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  req?: { url?: string };
  [key: string]: unknown;
}

/** The service as a child process, with its pino lines parsed as they arrive. */
class ServiceProcess {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  private waiters: (() => void)[] = [];

  constructor(readonly child: ChildProcess) {
    let buffered = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.stderr.push(line);
        }
      }
      for (const wake of this.waiters.splice(0)) wake();
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = once(child, 'exit').then(([code, signal]) => {
      for (const wake of this.waiters.splice(0)) wake();
      return { code: code as number | null, signal: signal as NodeJS.Signals | null, at: Date.now() };
    });
  }

  /** Resolves with the first log line matching, failing after `timeoutMs` or if the process exits. */
  async waitForLog(match: (line: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find(match);
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`process exited before ${what}:\n${this.stderr.join('')}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no log line for ${what} within ${timeoutMs} ms:\n${this.stderr.join('')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

type Probe = { status: number } | { error: string };

/** GET on a connection of its own (no keep-alive), so each probe tests the listener itself. */
function probe(port: number, path: string): Promise<Probe> {
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 2000 }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode ?? 0 }));
    });
    request.on('timeout', () => request.destroy(new Error('probe timed out')));
    request.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
  });
}

/** Starts the service on a fresh database and a free port; killed at teardown if still running. */
async function startService(t: Test, env: Record<string, string>): Promise<{ service: ServiceProcess; port: number }> {
  const databaseUrl = await freshPostgresDatabase(t, 'shutdown');
  const child = spawn(process.execPath, ['--import=tsx', 'src/server.ts'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'debug', // arrival lines ("incoming request") are debug
      DATA_DIR: tempDir(t),
      DATABASE_URL: databaseUrl,
      JWT_SECRET: 'shutdown-test-secret-0123456789',
      AUTH_RATE_LIMIT: '0',
      ...env,
    },
  });
  const service = new ServiceProcess(child);
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await service.exited;
    }
  });
  const listening = await service.waitForLog((line) => line.msg.startsWith('Server listening at'), START_TIMEOUT_MS, 'listening');
  return { service, port: Number(/:(\d+)$/.exec(listening.msg)?.[1]) };
}

/** A register request whose body is sent in two parts: the first now, the rest on `finish()`. */
function slowRegister(port: number, agent: http.Agent, requestId: string) {
  const body = Buffer.from(JSON.stringify({ username: randomName(), password: 'correct horse battery' }));
  const request = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/api/auth/register/',
    agent,
    headers: { 'content-type': 'application/json', 'content-length': body.length, 'x-request-id': requestId },
  });
  const response = new Promise<{ status: number; connection: string | undefined; json: { token?: string } }>((resolve, reject) => {
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, connection: response.headers.connection, json: JSON.parse(text) as { token?: string } }),
      );
    });
    request.on('error', reject);
  });
  request.write(body.subarray(0, 10));
  return { response, finish: () => request.end(body.subarray(10)) };
}

t.test('SIGTERM drains: readiness first, then the listener; in-flight work finishes; exit 0', async (t) => {
  const { service, port } = await startService(t, {
    SHUTDOWN_DELAY_MS: String(SHUTDOWN_DELAY_MS),
    SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
  });
  const { child } = service;
  t.ok(port > 0, `listening on ${port}`);
  t.same(await probe(port, '/readyz'), { status: 200 }, 'ready before the signal');

  // A user and an open notification socket.
  const registered = await fetch(`http://127.0.0.1:${port}/api/auth/register/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: randomName(), password: 'correct horse battery' }),
  });
  t.equal(registered.status, 201, 'registered');
  const { token } = (await registered.json()) as { token: string };
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ws/notifications/?token=${token}`);
  const socketClosed = once(socket, 'close') as Promise<[number, Buffer]>;
  await once(socket, 'open');

  // A slow client on a keep-alive connection: headers and part of the body now, the rest later.
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  const slow = slowRegister(port, agent, 'slow-upload');
  // In flight on the server: its "incoming request" line (debug) is logged before the body is read.
  await service.waitForLog((line) => line.reqId === 'slow-upload' && line.msg === 'incoming request', 10_000, 'the slow request');

  const signalledAt = Date.now();
  child.kill('SIGTERM');

  // 1. Readiness fails while the listener still accepts connections.
  const observed: Probe[] = [];
  for (const deadline = Date.now() + 5000; ; ) {
    const result = await probe(port, '/readyz');
    observed.push(result);
    if (!('status' in result) || result.status !== 200 || Date.now() > deadline) break;
    await delay(POLL_INTERVAL_MS);
  }
  t.same(observed.at(-1), { status: 503 }, `first answer other than 200 is a 503 (${observed.length} probes)`);
  t.ok(Date.now() - signalledAt < SHUTDOWN_DELAY_MS, 'readiness failed within the delay');

  // 2. Then the listener stops accepting connections.
  let refusedAt = 0;
  const until: Probe[] = [];
  for (const deadline = Date.now() + SHUTDOWN_DELAY_MS + 5000; ; ) {
    const result = await probe(port, '/healthz');
    if ('error' in result && result.error === 'ECONNREFUSED') {
      refusedAt = Date.now();
      break;
    }
    until.push(result);
    if (Date.now() > deadline) {
      t.fail('the listener never stopped accepting');
      break;
    }
    await delay(POLL_INTERVAL_MS);
  }
  // Until then: answered (200 while the delay runs, 503 once closing); a connection accepted
  // just as the listener closes may be reset rather than served.
  const unexpected = until.filter((r) => ('status' in r ? r.status !== 200 && r.status !== 503 : r.error !== 'ECONNRESET'));
  t.same(unexpected, [], `${until.length} probes before the refusal were answered 200/503`);
  t.ok(refusedAt - signalledAt >= SHUTDOWN_DELAY_MS, `new connections refused after ${refusedAt - signalledAt} ms, not before SHUTDOWN_DELAY_MS`);

  // 3. The socket was told to go elsewhere.
  const [code, reason] = await socketClosed;
  t.equal(code, 1001, 'socket closed with 1001 going away');
  t.ok(reason.toString().length > 0, `with a reason: ${reason.toString()}`);

  // 4. The in-flight request finishes normally, on the still-open pools.
  t.equal(child.exitCode, null, 'the process waits for the request in flight');
  slow.finish();
  const response = await slow.response;
  t.equal(response.status, 201, 'the slow register completes with its normal status');
  t.ok(response.json.token, 'and its normal body');
  t.equal(response.connection, 'close', 'and ends its keep-alive connection');

  // 5. Exit 0 within the budget.
  const exit = await Promise.race([
    service.exited,
    delay(SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS + 5000).then(() => undefined),
  ]);
  t.ok(exit, 'the process exited');
  if (!exit) return;
  t.equal(exit.code, 0, `exit code 0 (stderr: ${service.stderr.join('')})`);
  t.ok(exit.at - signalledAt < SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS, `exited after ${exit.at - signalledAt} ms`);
  t.ok(service.logs.some((line) => line.msg === 'shutting down' && line.signal === 'SIGTERM'), 'logged the signal');
  t.notOk(service.logs.some((line) => line.msg.includes('drain deadline') || line.msg.includes('killed by timeout')), 'no forced close');
});

t.test('a request that never finishes is cut off near SHUTDOWN_TIMEOUT_MS, and the exit is still clean', async (t) => {
  const timeoutMs = 3000;
  const { service, port } = await startService(t, { SHUTDOWN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: String(timeoutMs) });
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  const stuck = slowRegister(port, agent, 'stuck-upload');
  const outcome = stuck.response.then(
    (response) => `answered ${response.status}`,
    (error: NodeJS.ErrnoException) => error.code ?? error.message,
  );
  await service.waitForLog((line) => line.reqId === 'stuck-upload' && line.msg === 'incoming request', 10_000, 'the stuck request');

  const signalledAt = Date.now();
  service.child.kill('SIGTERM');
  const exit = await Promise.race([service.exited, delay(timeoutMs + 5000).then(() => undefined)]);
  t.ok(exit, 'the process exited');
  if (!exit) return;
  t.equal(exit.code, 0, `exit code 0 (stderr: ${service.stderr.join('')})`);
  t.ok(exit.at - signalledAt < timeoutMs, `exited after ${exit.at - signalledAt} ms, within SHUTDOWN_TIMEOUT_MS`);
  t.ok(service.logs.some((line) => line.msg.includes('drain deadline')), 'the straggler was cut off');
  t.equal(await outcome, 'ECONNRESET', 'the stuck client sees its connection reset');
});
