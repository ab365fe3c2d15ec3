/**
 * The retrying publisher (src/bus/publish-retry.ts) over a bus that fails on demand, with
 * timers that move only when the test says: failed publishes are retried with backoff until
 * they go through, the queue is bounded, and closing stops the retries.
 */
import t from 'tap';
import { createPublishRetry, RETRY_FIRST_MS, RETRY_MAX_MS, TROUBLE_WINDOW_MS, type RetryTimers } from '../src/bus/publish-retry.js';

class FlakyBus {
  down = false;
  readonly published: string[] = [];
  async publish(_channel: string, payload: string): Promise<void> {
    if (this.down) throw new Error('publisher not connected');
    this.published.push(payload);
  }
}

class FakeTimers implements RetryTimers {
  time = 0;
  readonly timers = new Set<{ due: number; callback: () => void }>();
  schedule(ms: number, callback: () => void) {
    const timer = { due: this.time + ms, callback };
    this.timers.add(timer);
    return () => void this.timers.delete(timer);
  }
  now = () => this.time;
  pending = () => [...this.timers].map((timer) => timer.due - this.time);
  async advance(ms: number): Promise<void> {
    this.time += ms;
    for (const timer of [...this.timers]) {
      if (timer.due > this.time) continue;
      this.timers.delete(timer);
      timer.callback();
    }
    for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const silent = { warn() {}, info() {} };

t.test('a failed publish is retried with backoff until it goes through', async (t) => {
  const bus = new FlakyBus();
  const timers = new FakeTimers();
  const failures: string[] = [];
  const publisher = createPublishRetry({ bus, logger: silent, timers, onFailure: (kind) => void failures.push(kind) });
  bus.down = true;
  await publisher.publish('c', 'one', 'conversation');
  await publisher.publish('u', 'two', 'notification');
  t.same(failures, ['conversation', 'notification']);
  t.equal(publisher.queued(), 2);
  t.ok(publisher.troubled());
  t.same(timers.pending(), [RETRY_FIRST_MS], 'one retry scheduled');
  await timers.advance(RETRY_FIRST_MS);
  t.same(timers.pending(), [RETRY_FIRST_MS * 2], 'failed again: the next wait doubles');
  for (let i = 0; i < 10; i++) await timers.advance(timers.pending()[0]!);
  t.same(timers.pending(), [RETRY_MAX_MS], 'capped');
  bus.down = false;
  await timers.advance(RETRY_MAX_MS);
  t.same(bus.published, ['one', 'two'], 'published once back, in their order');
  t.equal(publisher.queued(), 0);
  t.same(timers.pending(), [], 'nothing left to retry');
  t.ok(publisher.troubled(), 'still troubled for a while (rooms keep checking)');
  await timers.advance(TROUBLE_WINDOW_MS);
  t.notOk(publisher.troubled(), 'then calm');
});

t.test('the queue is bounded: the oldest payloads are dropped and counted', async (t) => {
  const bus = new FlakyBus();
  const dropped: string[] = [];
  const publisher = createPublishRetry({ bus, logger: silent, timers: new FakeTimers(), maxQueued: 3, onDropped: (kind) => void dropped.push(kind) });
  bus.down = true;
  for (const payload of ['a', 'b', 'c', 'd', 'e']) await publisher.publish('c', payload, 'conversation');
  t.equal(publisher.queued(), 3);
  t.same(dropped, ['conversation', 'conversation']);
  bus.down = false;
  await publisher.flush();
  t.same(bus.published, ['c', 'd', 'e'], 'the newest are kept');
});

t.test('flush retries what is queued at once; close stops the retries', async (t) => {
  const bus = new FlakyBus();
  const timers = new FakeTimers();
  const publisher = createPublishRetry({ bus, logger: silent, timers });
  bus.down = true;
  await publisher.publish('c', 'x', 'conversation');
  bus.down = false;
  await publisher.flush();
  t.same(bus.published, ['x'], 'flushed without waiting for the timer');
  bus.down = true;
  await publisher.publish('c', 'y', 'conversation');
  publisher.close();
  t.same(timers.pending(), [], 'no timer left after close');
  t.equal(publisher.queued(), 0);
});
