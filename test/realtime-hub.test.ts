/**
 * The room hub (src/realtime/hub.ts) on the in-process bus and a fake event log: a room's
 * bus subscription exists exactly while the room does, whether its set-up worked or not; quiet
 * rooms check their position against the database.
 */
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { IDLE_CHECK_EVERY, POSITION_CHECK_MS, RoomHub, type HubCounters } from '../src/realtime/hub.js';
import { conversationChannel } from '../src/redis/names.js';
import { FakeLogger, FakeScheduler, FakeSink, FakeSource, settle } from './helpers/realtime-fakes.js';

function setup() {
  const bus = createMemoryBus();
  const source = new FakeSource(10);
  const roomCounts: number[] = [];
  const counters: HubCounters = { received() {}, delivered() {}, rooms: (count) => void roomCounts.push(count) };
  const hub = new RoomHub(bus, source, new FakeLogger(), counters, new FakeScheduler());
  return { bus, source, hub, roomCounts };
}

const channel = conversationChannel(7);
const noTyping = () => {};

t.test('start() failing in acquire: the subscription is undone and the room forgotten; the next acquire works', async (t) => {
  const { bus, source, hub, roomCounts } = setup();
  t.teardown(() => bus.close());
  source.failNextCurrentSeq(1);
  await t.rejects(hub.acquire(7, noTyping), /database unavailable/);
  t.same(bus.subscribedChannels(), [], 'no bus subscription left behind');
  t.equal(hub.size, 0, 'no room left in the hub');
  t.equal(roomCounts.at(-1), 0, 'the rooms gauge says so');

  const room = await hub.acquire(7, noTyping);
  t.same(bus.subscribedChannels(), [channel], 'a new room subscribes');
  const sink = new FakeSink();
  await room.join(sink, undefined);
  source.append(11, 11);
  await bus.publish(channel, '11 0\n{"seq":11}');
  await settle();
  t.same(sink.seqs, [11], 'and delivers');
  hub.release(7, noTyping);
  await settle();
  t.same(bus.subscribedChannels(), [], 'released: unsubscribed');
  t.equal(hub.size, 0);
});

t.test('start() failing with two sockets waiting: both fail, nothing is left behind', async (t) => {
  const { bus, source, hub } = setup();
  t.teardown(() => bus.close());
  source.failNextCurrentSeq(1);
  const results = await Promise.allSettled([hub.acquire(7, noTyping), hub.acquire(7, () => {})]);
  t.same(results.map((result) => result.status), ['rejected', 'rejected']);
  t.same(bus.subscribedChannels(), []);
  t.equal(hub.size, 0);
  await hub.acquire(7, noTyping);
  t.equal(source.currentSeqCalls, 2, 'the next acquire starts a new room');
});

t.test('close() while a room is being set up leaves no subscription', async (t) => {
  const { bus, hub } = setup();
  t.teardown(() => bus.close());
  const acquired = hub.acquire(7, noTyping);
  await hub.close();
  await t.rejects(acquired, /closed/, 'the waiting socket is told');
  await settle();
  t.same(bus.subscribedChannels(), []);
  t.equal(hub.size, 0);
});

t.test('a room is shared and kept until its last socket leaves', async (t) => {
  const { bus, hub } = setup();
  t.teardown(() => bus.close());
  const first = await hub.acquire(7, noTyping);
  const other = () => {};
  t.equal(await hub.acquire(7, other), first, 'the same room');
  hub.release(7, noTyping);
  t.same(bus.subscribedChannels(), [channel], 'one socket left: still subscribed');
  hub.release(7, other);
  await settle();
  t.same(bus.subscribedChannels(), []);
});

t.test('position checks: a quiet room behind the database catches up without a later event', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const source = new FakeSource(10);
  const scheduler = new FakeScheduler();
  let troubled = false;
  const checks: Array<[number, number]> = [];
  const counters: HubCounters = { received() {}, delivered() {}, rooms() {}, positionChecked: (checked, behind) => void checks.push([checked, behind]) };
  const hub = new RoomHub(bus, source, new FakeLogger(), counters, scheduler, { troubled: () => troubled });
  t.teardown(() => hub.close());
  const room = await hub.acquire(7, noTyping);
  const sink = new FakeSink();
  await room.join(sink, undefined);

  // Seq 11 committed, its publish lost.
  source.append(11, 11);
  await scheduler.advance(POSITION_CHECK_MS);
  t.same(sink.seqs, [], 'no publish failure here: no check at every interval');
  troubled = true;
  await scheduler.advance(POSITION_CHECK_MS);
  t.same(sink.seqs, [11], 'while publishes fail, a quiet room is checked and reads what it missed');
  t.same(checks.at(-1), [1, 1], 'one room checked, found behind');

  // A room that hears events is left to its sequencer.
  source.append(12, 13);
  await bus.publish(channel, '13 0\n{"seq":13}');
  await settle();
  const readsBefore = source.reads.length;
  const checksBefore = checks.length;
  await scheduler.advance(POSITION_CHECK_MS - 1);
  t.equal(checks.length, checksBefore, 'not checked in the interval it heard something');
  await scheduler.advance(1);
  t.ok(source.reads.length > readsBefore, 'its gap is the sequencer\'s to fill');
  t.same(sink.seqs, [11, 12, 13]);

  // Without failures here, a lost publish elsewhere is still repaired, less often.
  troubled = false;
  source.append(14, 14);
  await scheduler.advance(POSITION_CHECK_MS * (IDLE_CHECK_EVERY - 1));
  t.same(sink.seqs, [11, 12, 13, 14], `repaired by the idle check (every ${IDLE_CHECK_EVERY} intervals)`);
});

t.test('position checks stop with the last room and with close()', async (t) => {
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const scheduler = new FakeScheduler();
  const hub = new RoomHub(bus, new FakeSource(1), new FakeLogger(), { received() {}, delivered() {}, rooms() {} }, scheduler, { troubled: () => true });
  await hub.acquire(7, noTyping);
  t.same(scheduler.pending(), [POSITION_CHECK_MS], 'a check is scheduled while there is a room');
  hub.release(7, noTyping);
  await scheduler.advance(POSITION_CHECK_MS);
  t.same(scheduler.pending(), [], 'none after the last room left');
  await hub.acquire(8, noTyping);
  await hub.close();
  t.same(scheduler.pending(), [], 'none after close');
});
