/**
 * A big room's broadcast yields the event loop between batches of sockets (src/realtime/room.ts):
 * one event to 2,000 local sockets is handed out BROADCAST_BATCH at a time, a timer scheduled
 * during it runs before it ends, every socket still gets every event once, in seq order, and
 * the event is encoded once for all of them. Driven by the fake scheduler: deterministic.
 */
import t from 'tap';
import { BROADCAST_BATCH, ConversationRoom } from '../src/realtime/room.js';
import { event, FakeLogger, FakeScheduler, FakeSink, FakeSource, settle } from './helpers/realtime-fakes.js';

const SOCKETS = 2_000;

async function bigRoom(count: number) {
  const scheduler = new FakeScheduler();
  const source = new FakeSource(0);
  const delivered: number[] = [];
  const room = new ConversationRoom({
    conversationId: 1,
    source,
    logger: new FakeLogger(),
    scheduler,
    onDelivered: (n) => void delivered.push(n),
  });
  await room.start();
  const sinks = Array.from({ length: count }, () => new FakeSink());
  for (const sink of sinks) await room.join(sink, undefined);
  return { room, scheduler, source, sinks, delivered };
}

t.test('2,000 sockets: the broadcast yields, a timer scheduled during it fires before it ends', async (t) => {
  const { room, scheduler, source, sinks, delivered } = await bigRoom(SOCKETS);
  const firstSend = sinks[0]!.send.bind(sinks[0]);
  let sentWhenTimerFired: number | undefined;
  // The first socket's write schedules a timer (as any other room's work would be).
  sinks[0]!.send = (data) => {
    if (sentWhenTimerFired === undefined) {
      scheduler.schedule(0, () => {
        sentWhenTimerFired = sinks.filter((sink) => sink.sent.length > 0).length;
      });
    }
    return firstSend(data);
  };
  source.append(1, 2);
  room.receive(event(1));
  t.equal(sinks.filter((sink) => sink.sent.length > 0).length, BROADCAST_BATCH, `one batch (${BROADCAST_BATCH}) at once, then a yield`);
  room.receive(event(2));
  t.equal(sinks.filter((sink) => sink.sent.length > 1).length, 0, 'the next event waits for the first to reach every socket');

  await scheduler.advance(0);
  t.ok(sentWhenTimerFired !== undefined && sentWhenTimerFired < SOCKETS, `the timer fired with ${sentWhenTimerFired} of ${SOCKETS} sockets served`);
  for (let turns = 0; turns < 100 && sinks.some((sink) => sink.sent.length < 2); turns++) await scheduler.advance(0);
  await settle();
  t.ok(sinks.every((sink) => sink.seqs.join() === '1,2'), 'every socket got 1 then 2, once each');
  t.same(delivered, [SOCKETS, SOCKETS], 'each event counted once, for all sockets');
  t.same(scheduler.pending(), [], 'nothing left scheduled');
  room.close();
});

t.test('the event is encoded once per replica, and a small room is served in one go', async (t) => {
  const { room, scheduler, sinks } = await bigRoom(BROADCAST_BATCH * 3);
  const buffers = new Set<unknown>();
  for (const sink of sinks) {
    const send = sink.send.bind(sink);
    sink.send = (data) => (buffers.add(data), send(data));
  }
  room.receive(event(1));
  while (sinks.some((sink) => sink.sent.length === 0)) await scheduler.advance(0);
  t.equal(buffers.size, 1, 'one Buffer shared by all sockets');
  room.close();

  const small = await bigRoom(10);
  small.room.receive(event(1));
  t.ok(small.sinks.every((sink) => sink.seqs.join() === '1'), 'a room of 10 gets it at once');
  t.same(small.scheduler.pending(), [], 'no yield for a small room');
  small.room.close();
});

t.test('sockets that join or leave during a batched broadcast: no gap, no duplicate', async (t) => {
  const { room, scheduler, source, sinks } = await bigRoom(SOCKETS);
  source.append(1, 1);
  room.receive(event(1));
  const late = new FakeSink();
  await room.join(late, 0);
  const leaving = sinks.at(-1)!;
  const handle = await room.join(new FakeSink(), undefined);
  handle.leave();
  await settle();
  for (let turns = 0; turns < 100 && sinks.slice(0, -1).some((sink) => sink.sent.length === 0); turns++) await scheduler.advance(0);
  await settle();
  t.same(late.seqs, [1], 'a socket that joined mid-broadcast from seq 0 got event 1 once (from the log)');
  t.ok(leaving.seqs.join() === '1', 'the last socket of the snapshot got it');
  room.close();
});
