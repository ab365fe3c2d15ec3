/**
 * The rate limits fail open: with the limiter's Redis down, registrations, logins and sends
 * go through (counted in chat_rate_limiter_unavailable_total, warned once per interval), and
 * the limits apply again once Redis is back. The failOpen wrapper's rules on a fake limiter.
 */
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { DomainError, unavailable } from '../src/domain/errors.js';
import { failOpen, UNAVAILABLE_WARN_INTERVAL_MS } from '../src/ratelimit/fail-open.js';
import { createRedisRateLimiter } from '../src/ratelimit/rate-limiter-redis.js';
import type { RateLimiter } from '../src/ratelimit/rate-limiter.js';
import { call, createConversation, register } from './helpers/api.js';
import { buildTestApp, testDatabase } from './helpers/app.js';
import { startRedisServer } from './helpers/redis-server.js';

t.test('Redis down: sends, logins and registrations are not refused', async (t) => {
  const redis = await startRedisServer(t);
  const { database } = await testDatabase(t, 'pglite');
  const rateLimiter = createRedisRateLimiter({ url: redis.url });
  t.teardown(() => rateLimiter.close());
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const app = await buildTestApp(t, { database, bus, rateLimiter, env: { MESSAGE_RATE_LIMIT: '3', AUTH_RATE_LIMIT: '1000' } });
  const alice = await register(app);
  const bob = await register(app);
  const conversation = await createConversation(app, alice, [bob]);
  const send = (content: string) => call(app, 'POST', `/api/conversations/${conversation}/messages/`, { token: alice.token, body: { content } });
  t.equal((await send('counted')).status, 201, 'counted while Redis is up');

  await redis.stop();
  const statuses = [];
  for (let i = 0; i < 5; i++) statuses.push((await send(`unchecked ${i}`)).status);
  t.same(statuses, [201, 201, 201, 201, 201], 'sends are stored, past the limit of 3 even: the limit is not checked');
  t.equal((await register(app)).user.username.length > 0, true, 'a registration goes through');
  const unchecked = await app.inject({ method: 'GET', url: '/metrics' });
  t.match(unchecked.body, /chat_rate_limiter_unavailable_total\{scope="msg"\} 5/, 'each unchecked send counted');

  await redis.restart();
  const deadline = Date.now() + 10_000;
  let status = 201;
  while (status === 201 && Date.now() < deadline) status = (await send('checked again')).status;
  t.equal(status, 429, 'Redis back: the limit applies again');
});

t.test('failOpen: unavailable is allowed and counted, warned once per interval; other errors still reject', async (t) => {
  let error: unknown = unavailable('redis', new Error('ECONNREFUSED'));
  const inner: RateLimiter = {
    consume: async () => {
      throw error;
    },
    close: async () => {},
  };
  let time = 0;
  const warnings: unknown[] = [];
  const counted: string[] = [];
  const limiter = failOpen(inner, { logger: { warn: (obj) => void warnings.push(obj) }, onUnavailable: (scope) => void counted.push(scope), now: () => time });
  for (let i = 0; i < 3; i++) t.same(await limiter.consume('msg', 'alice', 5), { allowed: true, retryAfterSeconds: 0 });
  t.same(counted, ['msg', 'msg', 'msg']);
  t.equal(warnings.length, 1, 'one warning for three decisions');
  time += UNAVAILABLE_WARN_INTERVAL_MS;
  await limiter.consume('auth', '1.2.3.4', 5);
  t.equal(warnings.length, 2, 'another after the interval');
  t.match(warnings[1], { unchecked: 3 }, 'saying how many went unchecked since the last one');
  error = new DomainError('invalid', 'bug');
  await t.rejects(limiter.consume('msg', 'alice', 5), { name: 'DomainError', message: 'bug' }, 'not an outage: rejected');
});
