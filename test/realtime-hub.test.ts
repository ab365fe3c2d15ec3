/**
 * The room hub (src/realtime/hub.ts) on the in-process bus and a fake event log: a room's
 * bus subscription exists exactly while the room does, whether its set-up worked or not.
 */
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { RoomHub, type HubCounters } from '../src/realtime/hub.js';
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
