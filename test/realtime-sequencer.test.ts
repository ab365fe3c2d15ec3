/**
 * The sequencer (src/realtime/sequencer.ts) on a fake event log and a fake scheduler: time
 * moves only when a test advances it, reads answer when a test lets them.
 */
import t from 'tap';
import type { EncodedEvent } from '../src/messages/event-codec.js';
import { REPLAY_PAGE } from '../src/realtime/room-source.js';
import { FILL_RETRY_MS, GAP_WAIT_MS, Sequencer } from '../src/realtime/sequencer.js';
import { FakeLogger, FakeScheduler, FakeSource, event, settle } from './helpers/realtime-fakes.js';

function setup(newest: number) {
  const source = new FakeSource(newest);
  const scheduler = new FakeScheduler();
  const logger = new FakeLogger();
  const delivered: number[] = [];
  const sequencer = new Sequencer({
    conversationId: 7,
    source,
    scheduler,
    logger,
    deliver: (e: EncodedEvent) => delivered.push(e.seq),
  });
  const afterSeqs = () => source.reads.map((read) => read.afterSeq);
  return { source, scheduler, logger, delivered, sequencer, afterSeqs };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

t.test('out-of-order publishes: seq order, each once; an early event waits; a gap the bus leaves is read after the wait', async (t) => {
  const { source, scheduler, delivered, sequencer, afterSeqs } = setup(10);
  await sequencer.start();
  t.equal(sequencer.head, 10, 'starts at the conversation’s newest seq');

  source.append(11, 12);
  sequencer.receive(event(12));
  t.same(delivered, [], '12 waits for 11');
  t.same(scheduler.pending(), [GAP_WAIT_MS], 'for GAP_WAIT_MS');
  sequencer.receive(event(11));
  t.same(delivered, [11, 12], '11 arrives: both go, in order');
  t.same(scheduler.pending(), [], 'the wait is over');

  sequencer.receive(event(12));
  sequencer.receive(event(11));
  t.same(delivered, [11, 12], 'repeats are dropped');

  source.append(13, 14);
  sequencer.receive(event(14));
  await scheduler.advance(GAP_WAIT_MS - 1);
  sequencer.receive(event(13));
  t.same(delivered, range(11, 14), 'a late event inside the wait closes the gap');
  t.same(source.reads, [], 'with no read of the log');

  source.append(15, 17);
  sequencer.receive(event(17));
  await scheduler.advance(GAP_WAIT_MS - 1);
  t.same(delivered, range(11, 14), '17 waits for 15 and 16');
  await scheduler.advance(1);
  t.same(afterSeqs(), [14], 'after the wait the gap is read from the log');
  t.same(source.reads[0]?.limit, REPLAY_PAGE, 'one page at most');
  t.same(delivered, range(11, 17), '15..17 delivered in order');

  sequencer.receive(event(16));
  sequencer.receive(event(15));
  t.same(delivered, range(11, 17), 'the bus’s late copies are not delivered again');
  t.equal(sequencer.head, 17);
  t.same(scheduler.pending(), [], 'nothing left waiting');
});

t.test('events that arrive while start() reads the newest seq: older ones dropped, newer ones kept', async (t) => {
  const { source, delivered, sequencer } = setup(10);
  const started = sequencer.start();
  source.append(11, 11);
  sequencer.receive(event(10));
  sequencer.receive(event(11));
  await started;
  t.same(delivered, [11]);
});

t.test('a failed fill is retried after FILL_RETRY_MS, then delivered', async (t) => {
  const { source, scheduler, logger, delivered, sequencer, afterSeqs } = setup(10);
  await sequencer.start();
  source.append(11, 13);
  source.failNextReads(1);
  sequencer.receive(event(13));
  await scheduler.advance(GAP_WAIT_MS);
  t.same(afterSeqs(), [10], 'the fill read was made');
  t.same(delivered, [], 'and failed: nothing delivered');
  t.same(logger.lines, [{ level: 'warn', msg: 'gap fill failed; retrying' }], 'the failure is logged');
  t.same(scheduler.pending(), [FILL_RETRY_MS], 'a retry is scheduled');

  source.append(14, 14);
  sequencer.receive(event(14));
  await scheduler.advance(FILL_RETRY_MS - 1);
  t.same(afterSeqs(), [10], 'no read before the retry is due, whatever arrives');
  await scheduler.advance(1);
  t.same(afterSeqs(), [10, 10], 'the retry reads again');
  t.same(delivered, range(11, 14), 'and everything is delivered, in order');
  t.same(scheduler.pending(), []);
});

t.test('a resync reads every page the log has beyond the sequencer', async (t) => {
  const { source, delivered, sequencer, afterSeqs } = setup(10);
  await sequencer.start();
  source.append(11, 1200);
  sequencer.resync();
  await settle();
  t.same(afterSeqs(), [10, 10 + REPLAY_PAGE, 10 + 2 * REPLAY_PAGE], 'page after page');
  t.same(delivered, range(11, 1200), 'everything lost on the bus, in order');
});

t.test('a resync whose read fails is retried', async (t) => {
  const { source, scheduler, delivered, sequencer } = setup(10);
  await sequencer.start();
  source.append(11, 12);
  source.failNextReads(1);
  sequencer.resync();
  await settle();
  t.same(delivered, []);
  await scheduler.advance(FILL_RETRY_MS);
  t.same(delivered, [11, 12]);
});

t.test('start() failing: rejects; nothing is delivered, read or scheduled; a later start() works from the newest seq', async (t) => {
  const { source, scheduler, delivered, sequencer } = setup(10);
  source.failNextCurrentSeq(1);
  await t.rejects(sequencer.start(), /database unavailable/);
  t.equal(sequencer.head, -1, 'the sequencer does not know where it stands');
  source.append(11, 12);
  sequencer.receive(event(12));
  t.same(delivered, [], 'events are held, not delivered');
  t.same(scheduler.pending(), [], 'no gap wait without a starting point');
  await scheduler.advance(FILL_RETRY_MS);
  t.same(source.reads, [], 'no read');
  await sequencer.start();
  t.equal(sequencer.head, 12, 'started again, it stands at the newest seq');
  source.append(13, 13);
  sequencer.receive(event(13));
  t.same(delivered, [13], 'and delivers from there');
});

t.test('close(): nothing is delivered, read or scheduled afterwards', async (t) => {
  const { source, scheduler, delivered, sequencer } = setup(10);
  await sequencer.start();
  source.append(11, 13);
  sequencer.receive(event(13));
  source.holdReads();
  await scheduler.advance(GAP_WAIT_MS);
  t.equal(source.heldReads, 1, 'a fill is running');
  sequencer.close();
  source.releaseRead();
  await settle();
  sequencer.receive(event(14));
  sequencer.resync();
  await scheduler.advance(FILL_RETRY_MS);
  t.same(delivered, [], 'the running fill delivers nothing');
  t.same(source.reads.length, 1, 'no further read');
  t.same(scheduler.pending(), []);
});

t.test('a resync during a fill: another fill up to the newest runs after the running one', async (t) => {
  const { source, scheduler, delivered, sequencer, afterSeqs } = setup(10);
  await sequencer.start();
  source.append(11, 12);
  sequencer.receive(event(12));
  source.holdReads();
  await scheduler.advance(GAP_WAIT_MS);
  t.equal(source.heldReads, 1, 'the gap fill’s read is running');
  // Committed and published while the bus was away: these never arrive live.
  source.append(13, 15);
  sequencer.resync();
  source.releaseRead();
  await settle();
  t.same(afterSeqs(), [10, 12], 'a second read, made after the resync');
  t.same(delivered, range(11, 15), 'what the outage lost is delivered without waiting for a live event');
  t.same(scheduler.pending(), []);
});

t.test('a resync while start() reads the newest seq is not forgotten', async (t) => {
  const { source, delivered, sequencer } = setup(10);
  const started = sequencer.start();
  source.append(11, 12);
  sequencer.resync();
  await started;
  await settle();
  t.same(delivered, [11, 12]);
});

t.test('a resync during a fill that then fails: the retry still reads up to the newest', async (t) => {
  const { source, scheduler, delivered, sequencer, afterSeqs } = setup(10);
  await sequencer.start();
  source.append(11, 12);
  sequencer.receive(event(12));
  source.holdReads();
  await scheduler.advance(GAP_WAIT_MS);
  source.append(13, 15);
  sequencer.resync();
  source.failHeldRead();
  await settle();
  t.same(delivered, [], 'the running read failed');
  t.same(scheduler.pending(), [FILL_RETRY_MS], 'a retry is scheduled');
  await scheduler.advance(FILL_RETRY_MS);
  t.same(afterSeqs(), [10, 10], 'one read for the gap and the resync together');
  t.same(delivered, range(11, 15));
});

t.test('a resync does not wait out the retry delay of a failed fill', async (t) => {
  const { source, scheduler, delivered, sequencer } = setup(10);
  await sequencer.start();
  source.append(11, 12);
  source.failNextReads(1);
  sequencer.receive(event(12));
  await scheduler.advance(GAP_WAIT_MS);
  t.same(scheduler.pending(), [FILL_RETRY_MS]);
  sequencer.resync();
  await settle();
  t.same(delivered, [11, 12], 'read at once');
  t.same(scheduler.pending(), [], 'the retry is no longer needed');
});

t.test('a gap behind a very large number of early events (no spread over the early map)', async (t) => {
  const count = 300_000;
  const { source, scheduler, delivered, sequencer, afterSeqs } = setup(0);
  await sequencer.start();
  source.append(1, count + 1);
  for (let seq = 2; seq <= count + 1; seq++) sequencer.receive(event(seq));
  t.equal(delivered.length, 0, 'everything waits for seq 1');
  await scheduler.advance(GAP_WAIT_MS);
  t.same(afterSeqs(), [0], 'one read fills the gap');
  t.equal(delivered.length, count + 1, 'then everything goes');
  t.ok(delivered.every((seq, i) => seq === i + 1), 'in order, each once');
  t.same(scheduler.pending(), []);
});
