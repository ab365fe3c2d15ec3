/**
 * The TicketStore guarantees (src/sessions/ticket-store.ts) on the memory store and on the Redis
 * service at 127.0.0.1:6379. The memory store's expiry is driven by an injected clock; the Redis
 * store leaves expiry to Redis (SET … EX), so there the test reads the key's PTTL instead of
 * waiting 30 seconds.
 */
import t, { type Test } from 'tap';
import { ticketKey } from '../src/redis/names.js';
import { createMemoryTicketStore } from '../src/sessions/ticket-store-memory.js';
import { createRedisTicketStore } from '../src/sessions/ticket-store-redis.js';
import type { TicketStore } from '../src/sessions/ticket-store.js';
import { redisCli } from './helpers/redis-server.js';

/** API.md: `"expires_in": 30`. */
const TICKET_TTL_SECONDS = 30;
const REDIS = { url: 'redis://127.0.0.1:6379', port: 6379 };

function singleUseContract(t: Test, make: (t: Test) => TicketStore): void {
  t.test('a ticket hands out its data once; every later use is refused', async (t) => {
    const store = make(t);
    const ticket = await store.issue('user 7', TICKET_TTL_SECONDS);
    t.equal(await store.consume(ticket), 'user 7');
    t.equal(await store.consume(ticket), null, 'the second use is refused');
    t.equal(await store.consume(ticket), null, 'and every one after');
  });

  t.test('concurrent uses: exactly one gets the data', async (t) => {
    const store = make(t);
    const ticket = await store.issue('user 8', TICKET_TTL_SECONDS);
    const results = await Promise.all(Array.from({ length: 10 }, () => store.consume(ticket)));
    t.same(results.filter((result) => result !== null), ['user 8']);
  });

  t.test('forged and malformed tickets find nothing; tickets are distinct', async (t) => {
    const store = make(t);
    const [a, b] = [await store.issue('a', TICKET_TTL_SECONDS), await store.issue('b', TICKET_TTL_SECONDS)];
    t.not(a, b);
    t.equal(await store.consume('A'.repeat(32)), null, 'well-formed but never issued');
    t.equal(await store.consume('../../etc'), null, 'malformed');
    t.equal(await store.consume(''), null, 'empty');
    t.equal(await store.consume(b), 'b', 'the others are untouched');
    t.equal(await store.consume(a), 'a');
  });
}

t.test('memory ticket store', async (t) => {
  let time = Date.UTC(2030, 0, 1);
  const make = (t: Test) => {
    const store = createMemoryTicketStore({ now: () => time });
    t.teardown(() => store.close());
    return store;
  };
  singleUseContract(t, make);

  t.test('a ticket is accepted until 30 s have passed, refused from then on', async (t) => {
    const store = make(t);
    const issuedAt = time;
    const early = await store.issue('early', TICKET_TTL_SECONDS);
    const late = await store.issue('late', TICKET_TTL_SECONDS);
    const edge = await store.issue('edge', TICKET_TTL_SECONDS);
    time = issuedAt + 29_999;
    t.equal(await store.consume(early), 'early', 'accepted 1 ms before 30 s');
    time = issuedAt + 30_000;
    t.equal(await store.consume(edge), null, 'refused at exactly 30 s');
    time = issuedAt + 30_001;
    t.equal(await store.consume(late), null, 'refused past 30 s');
    time = issuedAt;
    t.equal(await store.consume(late), null, 'an expired ticket that was presented stays refused');
  });

  t.test('expired tickets are swept on issue: a flood of them does not pile up', async (t) => {
    const store = make(t);
    const issuedAt = time;
    const stale: string[] = [];
    for (let i = 0; i < 1001; i++) stale.push(await store.issue(`stale ${i}`, TICKET_TTL_SECONDS));
    time = issuedAt + 31_000;
    const fresh = await store.issue('fresh', TICKET_TTL_SECONDS);
    // Back inside the stale tickets' lifetime: had the sweep kept them, they would be accepted.
    time = issuedAt + 1_000;
    t.equal(await store.consume(stale[0] ?? ''), null, 'a stale ticket was swept');
    t.equal(await store.consume(stale[1000] ?? ''), null, 'the last stale ticket was swept');
    t.equal(await store.consume(fresh), 'fresh');
  });
});

t.test('Redis ticket store', async (t) => {
  const make = (t: Test) => {
    const store = createRedisTicketStore({ url: REDIS.url });
    t.teardown(() => store.close());
    return store;
  };
  singleUseContract(t, make);

  t.test('a ticket is stored with a 30 s TTL, and removed when used', async (t) => {
    const store = make(t);
    const ticket = await store.issue('user 9', TICKET_TTL_SECONDS);
    const pttl = Number((await redisCli(REDIS.port, 'PTTL', ticketKey(ticket))).trim());
    t.ok(pttl > 25_000 && pttl <= 30_000, `expires by itself within 30 s (PTTL ${pttl})`);
    t.equal(await store.consume(ticket), 'user 9');
    t.equal(Number((await redisCli(REDIS.port, 'PTTL', ticketKey(ticket))).trim()), -2, 'the key is gone once used');
  });
});
