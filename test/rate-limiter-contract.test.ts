/**
 * One contract for every RateLimiter implementation (the guarantees in
 * src/ratelimit/rate-limiter.ts), run against the in-process limiter, the Redis service on
 * 127.0.0.1:6379 and a three-master Redis Cluster started by the test. Time comes from an
 * injected clock, so window edges are exact; every test counts under a scope of its own, so
 * runs sharing the Redis service never see each other's counts.
 */
import { randomUUID } from 'node:crypto';
import t, { type Test } from 'tap';
import { createRateLimiter } from '../src/ratelimit/factory.js';
import { type RateLimiter, type RateLimiterKind, WINDOW_MS, windowStartOf } from '../src/ratelimit/rate-limiter.js';
import { createRedisRateLimiter } from '../src/ratelimit/rate-limiter-redis.js';
import { rateLimitKey } from '../src/redis/names.js';
import { redisCli, startRedisCluster, startRedisServer } from './helpers/redis-server.js';
import { within } from './helpers/within.js';

const SHARED_REDIS = { url: 'redis://127.0.0.1:6379', port: 6379 };

interface Backend {
  kind: RateLimiterKind;
  redisUrl?: string;
  /** Whether two instances count together (Redis: replicas); memory counts per instance. */
  shared: boolean;
  /** Milliseconds until `key` expires at the broker, where there is one. */
  ttlMs?(key: string): Promise<number>;
}

/** A clock the test moves by hand, starting at the beginning of a window. */
function manualClock(): { now: () => number; windowStart: number; at(offsetMs: number): void } {
  const windowStart = windowStartOf(Date.now());
  let time = windowStart;
  return {
    now: () => time,
    windowStart,
    at(offsetMs) {
      time = windowStart + offsetMs;
    },
  };
}

const freshScope = (): string => `test-${randomUUID()}`;


function rateLimiterContract(name: string, setUp: (t: Test) => Promise<Backend>): void {
  t.test(name, async (t) => {
    const backend = await setUp(t);
    const make = (t: Test, now: () => number): RateLimiter => {
      const limiter = createRateLimiter({ kind: backend.kind, redisUrl: backend.redisUrl, now });
      t.teardown(() => limiter.close());
      return limiter;
    };
    /** `calls` units for one subject, one after the other; the `allowed` flags in order. */
    const consumeMany = async (limiter: RateLimiter, scope: string, subject: string, limit: number, calls: number) => {
      const allowed: boolean[] = [];
      for (let i = 0; i < calls; i++) allowed.push((await limiter.consume(scope, subject, limit)).allowed);
      return allowed;
    };

    t.test('counts up to the limit, then refuses with a Retry-After until the window ends', async (t) => {
      const clock = manualClock();
      const limiter = make(t, clock.now);
      const scope = freshScope();
      clock.at(0);
      for (let i = 0; i < 3; i++) {
        t.same(await limiter.consume(scope, 'alice', 3), { allowed: true, retryAfterSeconds: 0 }, `unit ${i + 1} of 3`);
      }
      t.same(await limiter.consume(scope, 'alice', 3), { allowed: false, retryAfterSeconds: 60 }, 'at the window start: 60 s');
      clock.at(1_000);
      t.same(await limiter.consume(scope, 'alice', 3), { allowed: false, retryAfterSeconds: 59 });
      clock.at(30_500);
      t.same(await limiter.consume(scope, 'alice', 3), { allowed: false, retryAfterSeconds: 30 }, 'rounded up');
      clock.at(WINDOW_MS - 1);
      t.same(await limiter.consume(scope, 'alice', 3), { allowed: false, retryAfterSeconds: 1 }, 'never 0 while refused');
      for (let offset = 0; offset < WINDOW_MS; offset += 7_919) {
        clock.at(offset);
        const { allowed, retryAfterSeconds } = await limiter.consume(scope, 'alice', 3);
        t.notOk(allowed, 'refused units are not given back');
        t.ok(retryAfterSeconds >= 1 && retryAfterSeconds <= 60, `retryAfterSeconds ${retryAfterSeconds} in 1..60`);
        t.equal(retryAfterSeconds, Math.ceil((WINDOW_MS - offset) / 1000), 'the seconds left in the window');
      }
    });

    t.test('limit 0 is unlimited and counts nothing', async (t) => {
      const clock = manualClock();
      const limiter = make(t, clock.now);
      const scope = freshScope();
      t.same(await consumeMany(limiter, scope, 'alice', 0, 200), Array(200).fill(true), '200 of 200 allowed');
      t.same(await consumeMany(limiter, scope, 'alice', 1, 2), [true, false], 'the unlimited calls spent none of a limit of 1');
    });

    t.test('subjects and scopes have budgets of their own', async (t) => {
      const clock = manualClock();
      const limiter = make(t, clock.now);
      const [scope, otherScope] = [freshScope(), freshScope()];
      t.same(await consumeMany(limiter, scope, 'alice', 2, 3), [true, true, false], 'alice spent hers');
      t.same(await consumeMany(limiter, scope, 'bob', 2, 3), [true, true, false], 'bob still had his');
      t.same(await consumeMany(limiter, otherScope, 'alice', 2, 3), [true, true, false], 'alice in another scope too');
      t.same(await consumeMany(limiter, scope, 'alice', 2, 1), [false], 'and her first budget stays spent');
    });

    t.test('a new window starts the count again', async (t) => {
      const clock = manualClock();
      const limiter = make(t, clock.now);
      const scope = freshScope();
      clock.at(WINDOW_MS - 1_000);
      t.same(await consumeMany(limiter, scope, 'alice', 2, 3), [true, true, false]);
      clock.at(WINDOW_MS);
      t.same(await consumeMany(limiter, scope, 'alice', 2, 3), [true, true, false], 'the next window: a full budget');
      t.same(await limiter.consume(scope, 'alice', 2), { allowed: false, retryAfterSeconds: 60 });
      clock.at(3 * WINDOW_MS + 59_000);
      t.same(await consumeMany(limiter, scope, 'alice', 2, 3), [true, true, false], 'a later window after idle ones');
      t.same(await limiter.consume(scope, 'alice', 2), { allowed: false, retryAfterSeconds: 1 });
    });

    if (backend.shared) {
      t.test('two instances on one Redis share one count (two replicas)', async (t) => {
        const clock = manualClock();
        const replicas = [make(t, clock.now), make(t, clock.now)] as const;
        const scope = freshScope();
        const allowed: boolean[] = [];
        for (let i = 0; i < 6; i++) allowed.push((await replicas[i % 2]!.consume(scope, 'alice', 4)).allowed);
        t.same(allowed, [true, true, true, true, false, false], 'alternating replicas, one budget of 4');
        const decisions = await Promise.all(Array.from({ length: 10 }, (_, i) => replicas[i % 2]!.consume(scope, 'bob', 4)));
        t.equal(decisions.filter((decision) => decision.allowed).length, 4, 'concurrent calls: exactly 4 of 10 allowed');
      });
    }

    if (backend.ttlMs) {
      const ttlMs = backend.ttlMs;
      t.test('the window start is part of the key and the key expires', async (t) => {
        const clock = manualClock();
        const limiter = make(t, clock.now);
        const scope = freshScope();
        clock.at(5_000);
        await limiter.consume(scope, 'alice', 10);
        const ttl = await ttlMs(rateLimitKey(scope, 'alice', clock.windowStart));
        t.ok(ttl > 0 && ttl <= 2 * WINDOW_MS, `the window's key expires (PTTL ${ttl} ms)`);
        t.equal(await ttlMs(rateLimitKey(scope, 'alice', clock.windowStart + WINDOW_MS)), -2, 'no key for the next window yet');
      });
    }

    t.test('close is idempotent', async (t) => {
      const clock = manualClock();
      const limiter = make(t, clock.now);
      t.ok((await limiter.consume(freshScope(), 'alice', 1)).allowed);
      await limiter.close();
      await limiter.close();
      t.pass('closed twice');
    });
  });
}

rateLimiterContract('memory', async () => ({ kind: 'memory', shared: false }));

rateLimiterContract('redis', async () => ({
  kind: 'redis',
  redisUrl: SHARED_REDIS.url,
  shared: true,
  ttlMs: async (key) => Number((await redisCli(SHARED_REDIS.port, 'PTTL', key)).trim()),
}));

rateLimiterContract('redis-cluster', async (t) => {
  const cluster = await startRedisCluster(t, { masters: 3 });
  return {
    kind: 'redis-cluster',
    redisUrl: cluster.urls[0],
    shared: true,
    ttlMs: async (key) => Number((await redisCli((await cluster.ownerOf(key)).port, 'PTTL', key)).trim()),
  };
});

t.test('redis: with Redis unreachable, consume rejects as unavailable', async (t) => {
  const server = await startRedisServer(t);
  const limiter = createRedisRateLimiter({ url: server.url });
  t.teardown(() => limiter.close());
  const scope = freshScope();
  t.ok((await limiter.consume(scope, 'alice', 5)).allowed, 'counted while Redis is up');
  await server.stop();
  await t.rejects(within(limiter.consume(scope, 'alice', 5), 'consume to settle'), { name: 'DomainError', kind: 'unavailable' });
  t.same(await limiter.consume(scope, 'alice', 0), { allowed: true, retryAfterSeconds: 0 }, 'limit 0 needs no Redis');
});

t.test('factory', async (t) => {
  const memory = createRateLimiter({ kind: 'memory' });
  t.ok((await memory.consume(freshScope(), 'alice', 1)).allowed);
  await memory.close();
  t.throws(() => createRateLimiter({ kind: 'nope' as never }), /unknown rate limiter kind/);
  t.throws(() => createRateLimiter({ kind: 'redis' }), /"redis" needs redisUrl/);
  t.throws(() => createRateLimiter({ kind: 'redis-cluster' }), /"redis-cluster" needs redisUrl/);
});
