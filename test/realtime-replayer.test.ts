/**
 * The replayer (src/realtime/replayer.ts): one socket brought up to the sequencer from a fake
 * event log, paced by a fake sink, with live events offered meanwhile; then the same through
 * a room, where a real sequencer offers them.
 */
import t from 'tap';
import { REPLAY_PAGE } from '../src/realtime/room-source.js';
import { MAX_PENDING_PER_MEMBER, Replayer } from '../src/realtime/replayer.js';
import { ConversationRoom } from '../src/realtime/room.js';
import { GAP_WAIT_MS } from '../src/realtime/sequencer.js';
import { CloseCode } from '../src/contract/socket-codes.js';
import { FakeLogger, FakeScheduler, FakeSink, FakeSource, event, settle } from './helpers/realtime-fakes.js';

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function setup(options: { newest: number; lastSent: number; budget?: number }) {
  const source = new FakeSource(options.newest);
  const sink = new FakeSink(options.budget);
  const logger = new FakeLogger();
  let head = options.newest;
  let goneCalls = 0;
  const replayer = new Replayer(sink, options.lastSent, {
    conversationId: 7,
    source,
    logger,
    head: () => head,
    onGone: () => void (goneCalls += 1),
  });
  /** As the sequencer hands on an event: committed first, so the log has it, then offered. */
  const live = (seq: number): boolean => {
    source.append(seq, seq);
    head = seq;
    const e = event(seq);
    return replayer.offer(e, () => Buffer.from(e.json));
  };
  const afterSeqs = () => source.reads.map((read) => read.afterSeq);
  return { source, sink, logger, replayer, live, afterSeqs, gone: () => goneCalls };
}

t.test('a socket far behind: page after page, paced by the reader; live events meanwhile go out once, in order', async (t) => {
  const { sink, replayer, live, afterSeqs, gone } = setup({ newest: 1250, lastSent: 0, budget: 0 });
  replayer.start();
  await settle();
  t.same(sink.sent, [], 'a sink that is not drained: nothing is sent');
  t.same(afterSeqs(), [0], 'one page read, waiting for the reader');

  sink.allow(600);
  await settle();
  t.same(sink.seqs, range(1, 600), 'the replay goes on as the reader makes room, across a page boundary');
  t.same(afterSeqs(), [0, REPLAY_PAGE], 'a page at a time');

  const offered = range(1251, 1260).map(live);
  t.same(offered, Array(10).fill(false), 'live events during the replay are not sent directly');
  await settle();
  t.equal(sink.sent.length, 600, 'nor ahead of the replay');

  sink.allow(Number.POSITIVE_INFINITY);
  await settle();
  t.same(sink.seqs, range(1, 1260), 'every event once, in order, no gap');
  t.same(afterSeqs(), [0, REPLAY_PAGE, 2 * REPLAY_PAGE], 'three pages');

  t.ok(live(1261), 'caught up: a live event goes straight to the socket');
  t.same(sink.seqs, range(1, 1261));
  t.equal(sink.closed, undefined, 'never closed');
  t.equal(gone(), 0);
});

t.test('live events that arrive while a page is being read follow it from the queue, once each', async (t) => {
  const { source, sink, replayer, live, afterSeqs } = setup({ newest: 600, lastSent: 0, budget: REPLAY_PAGE });
  replayer.start();
  await settle();
  t.same(sink.seqs, range(1, REPLAY_PAGE), 'the first page went out; the reader is full');
  source.holdReads();
  sink.allow(Number.POSITIVE_INFINITY);
  await settle();
  t.equal(source.heldReads, 1, 'the second page is being read');
  live(601);
  live(602);
  source.releaseRead();
  await settle();
  t.same(afterSeqs(), [0, REPLAY_PAGE], 'the read did not see 601 and 602 and was not repeated for them');
  t.same(sink.seqs, range(1, 602), 'they came from the queue, in order');
  t.ok(live(603), 'then live delivery');
});

t.test(`a backlog over MAX_PENDING_PER_MEMBER (${MAX_PENDING_PER_MEMBER}) closes the socket with the slow-consumer code`, async (t) => {
  const { sink, replayer, live, gone } = setup({ newest: 5, lastSent: 0, budget: 0 });
  replayer.start();
  await settle();
  for (let seq = 6; seq < 6 + MAX_PENDING_PER_MEMBER; seq++) live(seq);
  t.equal(sink.closed, undefined, 'a backlog of exactly the bound waits');
  live(6 + MAX_PENDING_PER_MEMBER);
  t.same(sink.closed, { code: CloseCode.slowConsumer, reason: 'too far behind: reconnect with last_seq' }, 'one more: closed with 4008');
  t.equal(gone(), 1, 'the room is told, once');
  sink.allow(Number.POSITIVE_INFINITY);
  await settle();
  t.same(sink.sent, [], 'nothing is sent after');
  t.notOk(live(7 + MAX_PENDING_PER_MEMBER), 'nor offered');
  t.equal(gone(), 1);
});

t.test('a replay read that fails closes the socket with 1011', async (t) => {
  const { source, sink, logger, replayer, gone } = setup({ newest: 5, lastSent: 0 });
  source.failNextReads(1);
  replayer.start();
  await settle();
  t.same(sink.closed, { code: 1011, reason: 'replay failed: reconnect with last_seq' });
  t.same(logger.lines, [{ level: 'warn', msg: 'replay failed; closing socket' }]);
  t.equal(gone(), 1);
});

t.test('a socket that leaves mid-replay: the replay stops, nothing more is read or sent', async (t) => {
  const { sink, replayer, live, afterSeqs, gone } = setup({ newest: 1200, lastSent: 0, budget: 100 });
  replayer.start();
  await settle();
  replayer.leave();
  sink.allow(Number.POSITIVE_INFINITY);
  await settle();
  t.same(sink.seqs, range(1, 100));
  t.notOk(live(1201));
  t.same(afterSeqs(), [0]);
  t.equal(gone(), 0, 'leaving is not giving up');
});

t.test('a socket that fails a send mid-replay is given up, without a close of our own', async (t) => {
  const { sink, replayer, afterSeqs, gone } = setup({ newest: 1200, lastSent: 0, budget: 100 });
  replayer.start();
  await settle();
  sink.close(1006, 'gone');
  sink.allow(Number.POSITIVE_INFINITY);
  await settle();
  t.same(sink.seqs, range(1, 100));
  t.same(sink.closed, { code: 1006, reason: 'gone' });
  t.same(afterSeqs(), [0]);
  t.equal(gone(), 1);
});

t.test('in a room: a socket resuming from far behind while the sequencer reorders and fills', async (t) => {
  const source = new FakeSource(1000);
  const scheduler = new FakeScheduler();
  const deliveries: number[] = [];
  const room = new ConversationRoom({
    conversationId: 7,
    source,
    logger: new FakeLogger(),
    scheduler,
    onDelivered: (count) => deliveries.push(count),
  });
  await room.start();
  const behind = new FakeSink(0);
  const current = new FakeSink();
  const ahead = new FakeSink();
  await room.join(behind, 0);
  await room.join(current, undefined);
  await room.join(ahead, 5000);
  t.equal(room.size, 3);

  source.append(1001, 1005);
  room.receive(event(1002));
  room.receive(event(1001));
  room.receive(event(1005));
  await scheduler.advance(GAP_WAIT_MS);
  room.receive(event(1004));
  t.same(current.seqs, range(1001, 1005), 'live: in order, the gap filled from the log after the wait');
  t.same(ahead.seqs, range(1001, 1005), 'a claim ahead of the log is clamped to it');
  t.same(deliveries, [2, 2, 2, 2, 2], 'each live event counted for the two live sockets');

  behind.allow(Number.POSITIVE_INFINITY);
  await settle();
  t.same(behind.seqs, range(1, 1005), 'the resuming socket: history then live, once each, in order');
  source.append(1006, 1006);
  room.receive(event(1006));
  t.same(behind.seqs.at(-1), 1006, 'and now live');
  t.same(deliveries.at(-1), 3);
});
