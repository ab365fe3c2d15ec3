/**
 * Logs are pino JSON lines carrying `reqId`; every error response names the same id
 * (`requestId` in the body, `x-request-id` header), so a user's report leads to the log line.
 */
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { buildApp } from '../src/app.js';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { testConfig, testDatabase } from './helpers/app.js';

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  err?: { message?: string; stack?: string };
  [key: string]: unknown;
}

/** An app whose logger writes into `lines`, with one route that fails like a bug would. */
async function appWithCapturedLogs(t: Test) {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as LogLine);
      callback();
    },
  });
  const { database } = await testDatabase(t, 'pglite');
  const app = await buildApp({
    config: testConfig(t, { MIGRATE_ON_START: 'false' }),
    logger: { level: 'info', stream },
    database,
    bus: createMemoryBus(),
  });
  // Test-side only: a route on this test's own app instance that throws an unexpected error.
  app.get('/test-only/boom', async () => {
    throw new Error('secret internal detail');
  });
  t.teardown(() => app.close());
  await app.ready();
  return { app, lines };
}

t.test('an error response names the reqId of its log lines', async (t) => {
  const { app, lines } = await appWithCapturedLogs(t);

  const cases = [
    { what: 'validation error', method: 'POST' as const, url: '/api/auth/register/', payload: { username: 'x' }, status: 400 },
    { what: 'missing token', method: 'GET' as const, url: '/api/users/me/', status: 401 },
    { what: 'unknown route', method: 'GET' as const, url: '/api/nowhere/', status: 404 },
    { what: 'unexpected error', method: 'GET' as const, url: '/test-only/boom', status: 500 },
  ];
  for (const { what, status, ...request } of cases) {
    const response = await app.inject(request);
    t.equal(response.statusCode, status, `${what}: ${status}`);
    const body = response.json() as { requestId?: string; message: string; statusCode: number };
    t.type(body.requestId, 'string', `${what}: requestId in the body`);
    t.equal(response.headers['x-request-id'], body.requestId, `${what}: and in x-request-id`);
    const logged = lines.filter((line) => line.reqId === body.requestId);
    const completed = logged.filter((line) => line.msg === 'request completed');
    t.equal(completed.length, 1, `${what}: one access line under that reqId`);
    t.match(
      completed[0],
      { req: { method: request.method, url: request.url }, res: { statusCode: status }, responseTime: Number },
      `${what}: with method, URL, status ${status} and time`,
    );
    if (status === 500) {
      const error = logged.find((line) => line.msg === 'unhandled error');
      t.match(error?.err?.stack, /secret internal detail/, 'the stack is in the log line');
      t.equal(body.message, 'internal error', 'and not in the response');
    }
  }
});

t.test("a caller's sane x-request-id is kept; anything else is replaced", async (t) => {
  const { app, lines } = await appWithCapturedLogs(t);
  const kept = await app.inject({ method: 'GET', url: '/api/users/me/', headers: { 'x-request-id': 'lb-7f3a.42' } });
  t.equal(kept.json().requestId, 'lb-7f3a.42', 'the load balancer id is reused');
  t.ok(lines.some((line) => line.reqId === 'lb-7f3a.42'), 'and logged');

  const replaced = await app.inject({ method: 'GET', url: '/api/users/me/', headers: { 'x-request-id': 'bad id\u0001<script>' } });
  const id = replaced.json().requestId as string;
  t.match(id, /^[0-9a-f-]{36}$/, `a fresh UUID instead (${id})`);
  t.ok(lines.some((line) => line.reqId === id), 'logged under the fresh id');
});
