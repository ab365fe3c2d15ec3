/** AUTH_RATE_LIMIT counts per client IP across replicas: two apps, one Redis, one budget. */
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { WINDOW_MS } from '../src/ratelimit/rate-limiter.js';
import { buildTestApp, testDatabase } from './helpers/app.js';
import { randomName } from './helpers/api.js';
import { startRedisServer } from './helpers/redis-server.js';

const LIMIT = 3;
/** The limit is a fixed window: start well inside one, so the attempts all count together. */
const WINDOW_MARGIN_MS = 5000;

t.test('login attempts from one IP are limited across two replicas sharing Redis', async (t) => {
  const redis = await startRedisServer(t);
  const { database } = await testDatabase(t, 'pglite');
  // inject() connects from 127.0.0.1: trusted as the load balancer, so X-Forwarded-For counts.
  const env = { REDIS_URL: redis.url, AUTH_RATE_LIMIT: String(LIMIT), TRUST_PROXY: '127.0.0.1' };
  // Separate apps with their own rate limiters (built from REDIS_URL), like two processes.
  const replicas = [
    await buildTestApp(t, { database, bus: createMemoryBus(), env }),
    await buildTestApp(t, { database, bus: createMemoryBus(), env }),
  ];
  const login = (replica: number, ip: string) =>
    replicas[replica % 2]!.inject({
      method: 'POST',
      url: '/api/auth/login/',
      // Behind the load balancer the client address arrives in X-Forwarded-For.
      headers: { 'x-forwarded-for': ip },
      payload: { username: randomName(), password: 'wrong password!' },
    });

  const left = WINDOW_MS - (Date.now() % WINDOW_MS);
  if (left < WINDOW_MARGIN_MS) await delay(left + 10);

  const statuses: number[] = [];
  for (let attempt = 0; attempt < LIMIT; attempt++) statuses.push((await login(attempt, '203.0.113.7')).statusCode);
  t.same(statuses, Array(LIMIT).fill(401), `${LIMIT} attempts, alternating replicas, are answered`);
  for (const replica of [0, 1]) {
    const refused = await login(replica, '203.0.113.7');
    t.equal(refused.statusCode, 429, `the next one is refused on replica ${replica + 1} too`);
    t.ok(Number(refused.headers['retry-after']) > 0, 'with Retry-After');
  }
  t.equal((await login(1, '198.51.100.9')).statusCode, 401, 'another IP has its own budget');
  const counted = await Promise.all(
    replicas.map(async (app) => /chat_rate_limited_total\{scope="auth"\} (\d+)/.exec((await app.inject('/metrics')).body)?.[1]),
  );
  t.same(counted, ['1', '1'], 'each replica counted its refusal');
});
