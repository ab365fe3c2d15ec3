/**
 * Deadlocks and serialization failures (src/db/retry.ts): two transactions that lock the same
 * rows in opposite orders deadlock for real on PostgreSQL; the victim is retried and both
 * commit. Past the retries the error classifies as unavailable (503), not internal (500).
 */
import { sql } from 'drizzle-orm';
import t from 'tap';
import { createDatabase } from '../src/db/client.js';
import { classifyError } from '../src/domain/errors.js';
import { CONFLICT_ATTEMPTS, retryConflicts } from '../src/db/retry.js';
import { freshPostgresDatabase } from './helpers/database.js';

t.test('a real deadlock: the victim is retried and both transactions commit', async (t) => {
  const url = await freshPostgresDatabase(t, 'deadlock');
  const database = createDatabase({ url, embeddedDir: '', poolSize: 4 });
  t.teardown(() => database.close());
  await database.query(sql`create table pair (id int primary key, n int not null)`);
  await database.query(sql`insert into pair values (1, 0), (2, 0)`);

  let arrived = 0;
  let open!: () => void;
  const bothLocked = new Promise<void>((resolve) => (open = resolve));
  const lockInOrder = (first: number, second: number) =>
    database.transaction(async (query) => {
      await query(sql`update pair set n = n + 1 where id = ${first}`);
      // The first try of each waits for the other to hold its first row: a certain deadlock.
      if (++arrived === 2) open();
      await bothLocked;
      await query(sql`update pair set n = n + 1 where id = ${second}`);
    });
  const results = await Promise.allSettled([lockInOrder(1, 2), lockInOrder(2, 1)]);
  t.same(results.map((result) => result.status), ['fulfilled', 'fulfilled'], 'both commit (the deadlock victim was retried)');
  t.same(await database.query(sql`select id, n from pair order by id`), [{ id: 1, n: 2 }, { id: 2, n: 2 }], 'each exactly once');
});

t.test('bounded: a conflict that persists ends as unavailable, other errors are not retried', async (t) => {
  const deadlock = Object.assign(new Error('deadlock detected'), { code: '40P01' });
  let tries = 0;
  const failing = await retryConflicts(async () => {
    tries += 1;
    throw deadlock;
  }).catch((error: unknown) => error);
  t.equal(tries, CONFLICT_ATTEMPTS, `tried ${CONFLICT_ATTEMPTS} times`);
  t.equal(classifyError(failing), 'unavailable', 'then a 503, not a 500');
  t.equal(classifyError(Object.assign(new Error('could not serialize'), { code: '40001' })), 'unavailable');
  tries = 0;
  await retryConflicts(async () => {
    tries += 1;
    throw new Error('a bug');
  }).catch(() => {});
  t.equal(tries, 1, 'anything else is not retried');
});
