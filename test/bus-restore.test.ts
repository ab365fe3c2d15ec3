/**
 * Reconnect bookkeeping (src/bus/redis-restore.ts) with a fake clock and attempts the test
 * answers itself: retries, coalesced triggers, stale tries, onReset and the stuck-client hook,
 * without a broker or a real timer. The real reconnects run in bus-contract.test.ts.
 */
import { setImmediate as drain } from 'node:timers/promises';
import t from 'tap';
import type { BusLogger } from '../src/bus/bus.js';
import { createRestorer, type RestoreClock, type RestorerOptions, withTimeout } from '../src/bus/redis-restore.js';

interface Attempt {
  stale(): boolean;
  answer(ok: boolean): Promise<void>;
  fail(err: Error): Promise<void>;
}

function setUp(overrides: Partial<RestorerOptions> = {}) {
  let now = 0;
  const timers: { at: number; task: () => void; done: boolean }[] = [];
  const clock: RestoreClock = {
    now: () => now,
    later(task, ms) {
      const timer = { at: now + ms, task, done: false };
      timers.push(timer);
      return () => {
        timer.done = true;
      };
    },
  };
  const attempts: Attempt[] = [];
  const logged: { level: 'warn' | 'info'; obj: unknown; msg: string | undefined }[] = [];
  const log: BusLogger = {
    warn: (obj, msg) => logged.push({ level: 'warn', obj, msg }),
    info: (obj, msg) => logged.push({ level: 'info', obj, msg }),
  };
  const state = { closed: false };
  const restorer = createRestorer({
    attempt: (stale) =>
      new Promise<boolean>((resolve, reject) => {
        attempts.push({
          stale,
          async answer(ok) {
            resolve(ok);
            await drain();
          },
          async fail(err) {
            reject(err);
            await drain();
          },
        });
      }),
    isClosed: () => state.closed,
    log,
    clustered: false,
    channelCount: () => 7,
    clock,
    retryMs: 1_000,
    ...overrides,
  });
  const last = (): Attempt => {
    const attempt = attempts.at(-1);
    if (!attempt) throw new Error('no attempt yet');
    return attempt;
  };
  /** Moves the clock on and runs the timers due. */
  const advance = async (ms: number): Promise<void> => {
    now += ms;
    for (const timer of timers) {
      if (!timer.done && timer.at <= now) {
        timer.done = true;
        timer.task();
      }
    }
    await drain();
  };
  const armed = (): number => timers.filter((timer) => !timer.done).length;
  return { restorer, attempts, last, logged, state, advance, armed };
}

t.test('nothing to restore before a loss', async (t) => {
  const { restorer, attempts } = setUp();
  await restorer.restore();
  t.equal(attempts.length, 0);
  t.notOk(restorer.pending());
});

t.test('a loss makes a reset pending; a successful try runs each callback once, in order', async (t) => {
  const { restorer, attempts, last, logged } = setUp();
  const calls: string[] = [];
  restorer.onReset(() => calls.push('first'));
  const remove = restorer.onReset(() => calls.push('removed'));
  restorer.onReset(() => calls.push('second'));
  remove();
  restorer.lost();
  restorer.lost();
  t.ok(restorer.pending());
  t.same(
    logged.filter((entry) => entry.level === 'warn').map((entry) => entry.msg),
    ['bus: Redis subscriber connection lost'],
    'logged once per outage',
  );
  void restorer.restore();
  t.equal(attempts.length, 1);
  t.same(calls, [], 'no callback before the try succeeds');
  await last().answer(true);
  t.same(calls, ['first', 'second']);
  t.notOk(restorer.pending());
  t.same(logged.at(-1), { level: 'info', obj: { channels: 7 }, msg: 'bus: Redis subscriptions restored' });
  await restorer.restore();
  t.equal(attempts.length, 1, 'nothing pending: no new try');
  t.same(calls, ['first', 'second']);
});

t.test('a failed try is retried on the timer until one succeeds', async (t) => {
  const { restorer, attempts, last, advance, armed } = setUp();
  let resets = 0;
  restorer.onReset(() => resets++);
  restorer.lost();
  void restorer.restore();
  await last().answer(false);
  t.equal(armed(), 1, 'a retry is scheduled');
  await advance(999);
  t.equal(attempts.length, 1, 'not before retryMs');
  await advance(1);
  t.equal(attempts.length, 2);
  await last().answer(false);
  void restorer.restore(); // a sign of recovery while a retry is scheduled
  t.equal(attempts.length, 3);
  await last().answer(false);
  t.equal(armed(), 1, 'still one retry timer, not two');
  await advance(1_000);
  await last().answer(true);
  t.equal(resets, 1);
  t.equal(armed(), 0);
  t.equal(attempts.length, 4);
});

t.test('a try that throws is logged and retried', async (t) => {
  const { restorer, attempts, last, logged, advance } = setUp();
  restorer.lost();
  void restorer.restore();
  const boom = new Error('boom');
  await last().fail(boom);
  t.same(logged.at(-1), { level: 'warn', obj: { err: boom }, msg: 'bus: restoring subscriptions failed; retrying' });
  t.ok(restorer.pending());
  await advance(1_000);
  t.equal(attempts.length, 2);
});

t.test('triggers during a try cause exactly one more try right after it', async (t) => {
  const { restorer, attempts, last, armed } = setUp();
  restorer.lost();
  void restorer.restore();
  void restorer.restore();
  void restorer.restore();
  t.equal(attempts.length, 1, 'one try at a time');
  await last().answer(false);
  t.equal(attempts.length, 2, 'the triggers meanwhile: one more try at once');
  t.equal(armed(), 0, 'and no timer for it');
  await last().answer(false);
  t.equal(attempts.length, 2, 'no trigger meanwhile: back to the timer');
  t.equal(armed(), 1);
});

t.test('a loss during a try makes it stale', async (t) => {
  const { restorer, attempts, last } = setUp();
  restorer.lost();
  void restorer.restore();
  const first = last();
  t.notOk(first.stale());
  restorer.lost();
  t.ok(first.stale(), 'lost again since the try began');
  await first.answer(false);
  t.equal(attempts.length, 1);
});

t.test('a throwing callback is logged and the others still run', async (t) => {
  const { restorer, last, logged } = setUp();
  const boom = new Error('boom');
  const calls: string[] = [];
  restorer.onReset(() => {
    throw boom;
  });
  restorer.onReset(() => calls.push('after'));
  restorer.lost();
  void restorer.restore();
  await last().answer(true);
  t.same(calls, ['after']);
  t.ok(logged.some((entry) => entry.msg === 'bus onReset callback threw' && JSON.stringify(entry.obj) === JSON.stringify({ err: boom })));
});

t.test('restores failing for longer than `stuck.afterMs` replace the client, then the count starts over', async (t) => {
  let replaced = 0;
  const { restorer, last, advance } = setUp({
    stuck: {
      afterMs: 3_000,
      replace() {
        replaced++;
      },
    },
  });
  restorer.lost();
  void restorer.restore();
  await last().answer(false); // failing since t = 0
  for (let i = 0; i < 3; i++) {
    await advance(1_000);
    await last().answer(false);
  }
  t.equal(replaced, 0, 'failing for 3 s: not more than afterMs yet');
  await advance(1_000);
  await last().answer(false);
  t.equal(replaced, 1, 'failing for 4 s: replaced');
  for (let i = 0; i < 3; i++) {
    await advance(1_000);
    await last().answer(false);
  }
  t.equal(replaced, 1, 'the count started over at the replacement');
  await advance(1_000);
  await last().answer(true);
  await advance(10_000);
  restorer.lost();
  void restorer.restore();
  await last().answer(false);
  t.equal(replaced, 1, 'a success resets the count');
});

t.test('without `stuck` a failing restore only retries', async (t) => {
  const { restorer, attempts, last, advance } = setUp();
  restorer.lost();
  void restorer.restore();
  await last().answer(false);
  await advance(60_000);
  await last().answer(false);
  t.equal(attempts.length, 2);
});

t.test('once closed nothing runs: no try, no callback, no timer', async (t) => {
  const { restorer, attempts, last, state, armed } = setUp();
  let resets = 0;
  restorer.onReset(() => resets++);
  restorer.lost();
  void restorer.restore();
  await last().answer(false);
  t.equal(armed(), 1);
  state.closed = true;
  restorer.close();
  t.equal(armed(), 0, 'close cancels the retry');
  restorer.lost();
  await restorer.restore();
  t.equal(attempts.length, 1);

  const second = setUp();
  let secondResets = 0;
  second.restorer.onReset(() => secondResets++);
  second.restorer.lost();
  void second.restorer.restore();
  second.state.closed = true;
  await second.last().answer(true);
  t.equal(secondResets, 0, 'a try that ends after close calls nothing');
  t.equal(resets, 0);
});

t.test('withTimeout passes a result through and rejects a step that hangs', async (t) => {
  t.equal(await withTimeout(Promise.resolve(5), 'a step', 1_000), 5);
  await t.rejects(withTimeout(new Promise(() => {}), 'hanging', 0), /bus: hanging timed out/);
});
