/**
 * The heartbeat spreads its pings over the interval (a bucket per tick, never every socket in
 * one loop), pings each socket once per interval, and terminates a socket that did not answer
 * its previous ping. Driven by a fake scheduler: no real timer.
 */
import t from 'tap';
import { createHeartbeat, HEARTBEAT_TICK_MS, type HeartbeatSocket } from '../src/realtime/heartbeat.js';
import { FakeScheduler } from './helpers/realtime-fakes.js';

class FakeSocket implements HeartbeatSocket {
  pings: number[] = [];
  terminated = false;
  answers = true;
  private readonly listeners = new Map<string, Array<() => void>>();
  constructor(private readonly clock: FakeScheduler) {}
  ping(): void {
    this.pings.push(this.clock.now);
    if (this.answers) queueMicrotask(() => this.emit('pong'));
  }
  terminate(): void {
    this.terminated = true;
    this.emit('close');
  }
  on(event: 'pong' | 'close', listener: () => void): this {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
    return this;
  }
  emit(event: string): void {
    for (const listener of this.listeners.get(event) ?? []) listener();
  }
}

const INTERVAL_MS = 10_000;

t.test('pings are spread over the interval, each socket once per interval', async (t) => {
  const clock = new FakeScheduler();
  const heartbeat = createHeartbeat(INTERVAL_MS, clock);
  t.teardown(() => heartbeat.stop());
  const buckets = INTERVAL_MS / HEARTBEAT_TICK_MS;
  const sockets = Array.from({ length: 100 }, () => new FakeSocket(clock));
  for (const socket of sockets) heartbeat.watch(socket);

  let pingedBefore = 0;
  for (let tick = 1; tick <= buckets; tick++) {
    await clock.advance(HEARTBEAT_TICK_MS);
    const pinged = sockets.reduce((sum, socket) => sum + socket.pings.length, 0);
    t.equal(pinged - pingedBefore, 100 / buckets, `tick ${tick} pings one bucket (${100 / buckets} sockets), not every socket`);
    pingedBefore = pinged;
  }
  t.ok(sockets.every((socket) => socket.pings.length === 1), 'after one interval every socket was pinged exactly once');
  await clock.advance(INTERVAL_MS);
  t.ok(sockets.every((socket) => socket.pings.length === 2), 'and once more in the next one');
  t.ok(sockets.every((socket) => (socket.pings[1] ?? 0) - (socket.pings[0] ?? 0) === INTERVAL_MS), 'one interval apart');
  t.notOk(sockets.some((socket) => socket.terminated), 'sockets that answer stay open');
});

t.test('a socket that misses a pong is terminated at its next turn; closed ones are forgotten', async (t) => {
  const clock = new FakeScheduler();
  const heartbeat = createHeartbeat(INTERVAL_MS, clock);
  t.teardown(() => heartbeat.stop());
  const [alive, dead, closed] = [new FakeSocket(clock), new FakeSocket(clock), new FakeSocket(clock)];
  dead.answers = false;
  for (const socket of [alive, dead, closed]) heartbeat.watch(socket);
  closed.emit('close');

  await clock.advance(INTERVAL_MS);
  t.equal(dead.pings.length, 1, 'the silent socket was pinged');
  t.notOk(dead.terminated, 'and is not dropped before it had an interval to answer');
  await clock.advance(INTERVAL_MS);
  t.ok(dead.terminated, 'one interval without a pong: terminated');
  t.equal(dead.pings.length, 1, 'instead of pinged again');
  t.notOk(alive.terminated, 'the answering socket stays');
  t.equal(alive.pings.length, 2);
  t.same(closed.pings, [], 'a closed socket is never pinged');
});

t.test('new sockets join the emptiest bucket; stop ends the ticks', async (t) => {
  const clock = new FakeScheduler();
  const heartbeat = createHeartbeat(INTERVAL_MS, clock);
  const first = Array.from({ length: 10 }, () => new FakeSocket(clock));
  for (const socket of first) heartbeat.watch(socket);
  // Half of them close: the next ten fill those buckets rather than piling onto one.
  for (const socket of first.slice(0, 5)) socket.emit('close');
  const second = Array.from({ length: 5 }, () => new FakeSocket(clock));
  for (const socket of second) heartbeat.watch(socket);
  const perTick: number[] = [];
  const all = [...first.slice(5), ...second];
  for (let tick = 0; tick < 10; tick++) {
    const before = all.reduce((sum, socket) => sum + socket.pings.length, 0);
    await clock.advance(HEARTBEAT_TICK_MS);
    perTick.push(all.reduce((sum, socket) => sum + socket.pings.length, 0) - before);
  }
  t.same(perTick, Array(10).fill(1), 'one socket per bucket');

  heartbeat.stop();
  t.same(clock.pending(), [], 'nothing scheduled after stop');
  await clock.advance(INTERVAL_MS * 2);
  t.ok(all.every((socket) => socket.pings.length === 1 && !socket.terminated), 'no ping after stop');
});

t.test('a short interval is one bucket, ticked once per interval', async (t) => {
  const clock = new FakeScheduler();
  const heartbeat = createHeartbeat(1000, clock);
  t.teardown(() => heartbeat.stop());
  const socket = new FakeSocket(clock);
  heartbeat.watch(socket);
  t.same(clock.pending(), [1000]);
  await clock.advance(3000);
  t.same(socket.pings, [1000, 2000, 3000]);
});
