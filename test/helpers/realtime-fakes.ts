/**
 * Fakes for the unit tests of src/realtime/ (sequencer, replayer, hub): an event log, a
 * socket sink, a scheduler whose time moves only when a test says so, and a logger that
 * remembers. Nothing here waits on a real timer.
 */
import type { EncodedEvent } from '../../src/messages/event-codec.js';
import type { RoomLogger, RoomSource } from '../../src/realtime/room-source.js';
import type { Cancel, Scheduler } from '../../src/realtime/scheduler.js';
import type { EventSink } from '../../src/realtime/sink.js';

export const event = (seq: number): EncodedEvent => ({ seq, json: `{"seq":${seq}}` });

/** Lets every promise continuation that is ready run (the fakes resolve at once or on demand). */
export const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

interface Timer {
  due: number;
  order: number;
  callback: () => void;
}

/** Time stands still until `advance`; due callbacks run in due order, then in schedule order. */
export class FakeScheduler implements Scheduler {
  now = 0;
  private order = 0;
  private readonly timers = new Set<Timer>();

  schedule(ms: number, callback: () => void): Cancel {
    const timer: Timer = { due: this.now + ms, order: this.order++, callback };
    this.timers.add(timer);
    return () => void this.timers.delete(timer);
  }

  /** Delays (from now) of the calls still scheduled, soonest first. */
  pending(): number[] {
    return [...this.timers].map((timer) => timer.due - this.now).sort((a, b) => a - b);
  }

  /** Moves time on by `ms`, running each call that falls due, and the promise work each starts. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      const next = [...this.timers].filter((timer) => timer.due <= end).sort((a, b) => a.due - b.due || a.order - b.order)[0];
      if (!next) break;
      this.timers.delete(next);
      this.now = next.due;
      next.callback();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

interface Held {
  release(): void;
  fail(error: Error): void;
}

/**
 * An event log in memory. A read sees the log as it is when the read is made, even if it is
 * held and answered later (as a query does). Reads can be made to fail or to wait.
 */
export class FakeSource implements RoomSource {
  readonly log: EncodedEvent[] = [];
  /** Every `readEvents` call, as (afterSeq, limit). */
  readonly reads: Array<{ afterSeq: number; limit: number }> = [];
  currentSeqCalls = 0;
  private failReads = 0;
  private failCurrentSeq = 0;
  private holding = false;
  private readonly held: Held[] = [];

  constructor(newest = 0) {
    this.append(1, newest);
  }

  /** Commits seqs `from..to`. */
  append(from: number, to: number): void {
    for (let seq = from; seq <= to; seq++) this.log.push(event(seq));
  }

  get newest(): number {
    return this.log.at(-1)?.seq ?? 0;
  }

  /** The next `count` reads reject. */
  failNextReads(count = 1): void {
    this.failReads = count;
  }

  failNextCurrentSeq(count = 1): void {
    this.failCurrentSeq = count;
  }

  /** Reads made from now on wait for `releaseRead`/`failHeldRead`. */
  holdReads(): void {
    this.holding = true;
  }

  /** How many reads are waiting. */
  get heldReads(): number {
    return this.held.length;
  }

  /** Answers the oldest held read (and stops holding new ones). */
  releaseRead(): void {
    this.holding = false;
    this.held.shift()?.release();
  }

  /** Fails the oldest held read (and stops holding new ones). */
  failHeldRead(): void {
    this.holding = false;
    this.held.shift()?.fail(new Error('readEvents: connection lost'));
  }

  async currentSeq(): Promise<number> {
    this.currentSeqCalls += 1;
    if (this.failCurrentSeq > 0) {
      this.failCurrentSeq -= 1;
      throw new Error('currentSeq: database unavailable');
    }
    return this.newest;
  }

  async currentSeqs(conversationIds: number[]): Promise<Map<number, number>> {
    this.currentSeqCalls += 1;
    return new Map(conversationIds.map((id) => [id, this.newest]));
  }

  readEvents(_conversationId: number, afterSeq: number, limit: number): Promise<EncodedEvent[]> {
    this.reads.push({ afterSeq, limit });
    if (this.failReads > 0) {
      this.failReads -= 1;
      return Promise.reject(new Error('readEvents: database unavailable'));
    }
    const answer = this.log.filter((e) => e.seq > afterSeq).slice(0, limit);
    if (!this.holding) return Promise.resolve(answer);
    return new Promise((resolve, reject) => {
      this.held.push({ release: () => resolve(answer), fail: reject });
    });
  }
}

/**
 * A socket: records what it is sent and how it is closed. `drained()` resolves while fewer
 * than `budget` events have been sent and waits otherwise, so a test decides how fast the
 * reader reads.
 */
export class FakeSink implements EventSink {
  readonly sent: string[] = [];
  closed: { code: number; reason: string } | undefined;
  drainedCalls = 0;
  private budget: number;
  private readonly waiting: Array<() => void> = [];

  constructor(budget = Number.POSITIVE_INFINITY) {
    this.budget = budget;
  }

  /** The seqs sent, in order. */
  get seqs(): number[] {
    return this.sent.map((json) => (JSON.parse(json) as { seq: number }).seq);
  }

  /** Lets the reader take `count` more events before `drained()` waits again. */
  allow(count: number): void {
    this.budget = this.sent.length + count;
    while (this.waiting.length > 0 && this.sent.length < this.budget) this.waiting.shift()!();
  }

  send(data: Buffer | string): boolean {
    if (this.closed) return false;
    this.sent.push(data.toString());
    return true;
  }

  close(code: number, reason: string): void {
    this.closed ??= { code, reason };
  }

  drained(): Promise<void> {
    this.drainedCalls += 1;
    if (this.closed || this.sent.length < this.budget) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

export class FakeLogger implements RoomLogger {
  readonly lines: Array<{ level: 'warn' | 'error'; msg: string | undefined }> = [];
  warn(_obj: unknown, msg?: string): void {
    this.lines.push({ level: 'warn', msg });
  }
  error(_obj: unknown, msg?: string): void {
    this.lines.push({ level: 'error', msg });
  }
}
