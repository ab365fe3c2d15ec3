/** The client library's reconnect delays: `backoffDelay`, exponential with full-range jitter between half the ceiling and the ceiling. */
import t from 'tap';
import { backoffDelay, DEFAULT_BACKOFF } from '@chat-service/client';

t.test('backoffDelay', async (t) => {
  const options = { initialMs: 100, maxMs: 5_000, factor: 2 };
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = Math.min(5_000, 100 * 2 ** attempt);
    t.equal(backoffDelay(attempt, { ...options, random: () => 0 }), ceiling / 2, `attempt ${attempt}: random 0 → half the ceiling (${ceiling / 2})`);
    t.equal(backoffDelay(attempt, { ...options, random: () => 1 }), ceiling, `attempt ${attempt}: random 1 → the ceiling (${ceiling})`);
    t.equal(backoffDelay(attempt, { ...options, random: () => 0.5 }), Math.round(ceiling * 0.75), `attempt ${attempt}: random 0.5 → three quarters`);
    for (let i = 0; i < 200; i++) {
      const value = backoffDelay(attempt, { ...options, random: Math.random });
      if (value < ceiling / 2 || value > ceiling) {
        t.fail(`attempt ${attempt}: ${value} outside [${ceiling / 2}, ${ceiling}]`);
        break;
      }
    }
  }

  const ceilings = Array.from({ length: 8 }, (_, attempt) => backoffDelay(attempt, { ...options, random: () => 1 }));
  t.same(ceilings, [100, 200, 400, 800, 1600, 3200, 5000, 5000], 'the ceiling doubles per attempt (factor 2) up to maxMs');
  t.same(
    Array.from({ length: 5 }, (_, attempt) => backoffDelay(attempt, { initialMs: 10, maxMs: 10_000, factor: 3, random: () => 1 })),
    [10, 30, 90, 270, 810],
    'factor 3 triples it',
  );
  t.equal(backoffDelay(10_000, { ...options, random: () => 1 }), 5_000, 'capped at maxMs however many attempts (no Infinity, no NaN)');
  t.equal(backoffDelay(-3, { ...options, random: () => 1 }), 100, 'a negative attempt counts as the first');
  // Lower bounds grow too: attempt n+1 is never shorter than attempt n's shortest, until the cap.
  t.ok(backoffDelay(3, { ...options, random: () => 0 }) >= backoffDelay(2, { ...options, random: () => 1 }), "attempt 3's shortest ≥ attempt 2's longest");

  let calls = 0;
  const random = (): number => {
    calls++;
    return 0.25;
  };
  t.equal(backoffDelay(2, { ...options, random }), Math.round(400 / 2 + 0.25 * 200), 'the delay is computed from the injected random()');
  t.equal(calls, 1, 'random() called once per delay');
  t.not(backoffDelay(4, { ...options, random: () => 0.1 }), backoffDelay(4, { ...options, random: () => 0.9 }), 'different random values, different delays (jitter)');

  const first = backoffDelay(0);
  t.ok(first >= DEFAULT_BACKOFF.initialMs / 2 && first <= DEFAULT_BACKOFF.initialMs, `defaults: the first retry within [${DEFAULT_BACKOFF.initialMs / 2}, ${DEFAULT_BACKOFF.initialMs}] ms (${first})`);
  t.equal(backoffDelay(100, { ...DEFAULT_BACKOFF, random: () => 1 }), DEFAULT_BACKOFF.maxMs, `defaults: capped at ${DEFAULT_BACKOFF.maxMs} ms`);
});
