/**
 * Open-loop fan-out: messages go out on a fixed schedule whatever the server does, and each
 * delivery's latency counts from the moment the message was due (no coordinated omission).
 * Every recipient, the sender included, must receive every message of its conversation once.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { type Percentiles, percentiles, round } from '../lib/stats.js';
import { DeliverySet, slotsOf } from './deliveries.js';
import type { ServerEvent } from './socket.js';
import type { Member } from './world.js';

const PADDING = ' lorem ipsum dolor sit amet, consectetur adipiscing elit'; // ~64-byte messages
const WARM_UP_PREFIX = 'w';

export interface RunReport {
  rate: number;
  duration_s: number;
  sent: number;
  send_rate: number | null;
  expected_deliveries: number;
  received_deliveries: number;
  lost: number;
  loss_pct: number | null;
  duplicates: number;
  error_events: number;
  stray_events: number;
  delivered_per_s: number | null;
  latency_ms: Percentiles;
  /** How late the generator itself sent: near the latency p99, the generator was the limit. */
  generator_send_lag_ms: { p99: number | null; max: number | null };
  /** "Lost" deliveries that turned up after this run's drain, while later runs went on. */
  late_after_drain: number;
}

/**
 * Sees one run's sends and first deliveries as they happen (the soak's timeline). Offsets are
 * milliseconds from the run's time zero, by when the message was due; called synchronously
 * from the send loop and the socket handlers, so it must be cheap.
 */
export interface RunObserver {
  /** Once, before the first message is due, with the run's time zero (performance.now() clock). */
  started?(startMs: number): void;
  /** A message due at `offsetMs` went out; `recipients` sockets (the sender included) expect it. */
  sent?(offsetMs: number, recipients: number): void;
  /** A recipient's first copy of the message due at `offsetMs`, `latencyMs` after it was due. */
  delivered?(offsetMs: number, latencyMs: number): void;
}

export interface RunOptions {
  rate: number;
  durationS: number;
  drainMs?: number;
  observer?: RunObserver;
}

interface RunState {
  prefix: string;
  start: number;
  observer: RunObserver | undefined;
  due: Float64Array;
  seen: DeliverySet;
  latencies: number[];
  received: number;
  duplicates: number;
  errors: number;
  stray: number;
  lastReceive: number;
}

export interface Fanout {
  /** Pass to connectMembers: sees every event of every socket. */
  onEvent(member: Member, event: ServerEvent): void;
  /** Makes sure every socket has been joined to its room before anything is measured. */
  warmUp(members: readonly Member[]): Promise<void>;
  run(members: readonly Member[], options: RunOptions): Promise<RunReport>;
}

export function createFanout(): Fanout {
  let current: RunState | null = null;
  let runs = 0;
  let cursor = 0;
  const finished = new Map<string, RunReport>(); // prefix -> report, to count late deliveries

  function onEvent(member: Member, event: ServerEvent): void {
    member.joined = true;
    if (event.type === 'error') {
      if (current) current.errors++;
      return;
    }
    if (event.type !== 'chat.message') return;
    const clientId = event.message?.client_id;
    if (typeof clientId !== 'string') {
      if (current) current.stray++;
      return;
    }
    if (clientId.startsWith(WARM_UP_PREFIX)) return;
    if (!current || !clientId.startsWith(current.prefix)) {
      const report = finished.get(clientId.slice(0, clientId.indexOf('-') + 1));
      if (report) report.late_after_drain++;
      else if (current) current.stray++;
      return;
    }
    const i = Number(clientId.slice(current.prefix.length));
    if (!current.seen.holds(i, member.slot)) {
      current.stray++;
      return;
    }
    if (!current.seen.mark(i, member.slot)) {
      current.duplicates++;
      return;
    }
    const now = performance.now();
    current.latencies.push(now - current.due[i]!);
    current.observer?.delivered?.(current.due[i]! - current.start, now - current.due[i]!);
    current.received++;
    current.lastReceive = now;
  }

  /**
   * The server joins a socket to its room a moment after the handshake, and a live event
   * before that is not for it. Round after round, one message goes into every conversation
   * that still has a socket without any event; bounded.
   */
  async function warmUp(members: readonly Member[], rounds = 5, waitMs = 5000): Promise<void> {
    const byConversation = new Map<number, Member[]>();
    for (const m of members) byConversation.set(m.conversation.id, [...(byConversation.get(m.conversation.id) ?? []), m]);
    for (let round = 1; round <= rounds; round++) {
      const waiting = [...byConversation.values()].filter((group) => group.some((m) => !m.joined));
      if (waiting.length === 0) return;
      for (const group of waiting) group[0]!.socket.sendChat('warm-up', `${WARM_UP_PREFIX}${round}-${group[0]!.conversation.id}`);
      const deadline = performance.now() + waitMs;
      while (members.some((m) => !m.joined) && performance.now() < deadline) await delay(20);
    }
    const missing = members.filter((m) => !m.joined).length;
    if (missing > 0) throw new Error(`warm-up: ${missing} sockets never received an event`);
  }

  async function run(members: readonly Member[], { rate, durationS, drainMs = 5000, observer }: RunOptions): Promise<RunReport> {
    const total = Math.max(1, Math.round(rate * durationS));
    const start = performance.now() + 5;
    const state: RunState = {
      prefix: `r${++runs}-`,
      start,
      observer,
      due: new Float64Array(total),
      seen: new DeliverySet(total, slotsOf(members)),
      latencies: [],
      received: 0,
      duplicates: 0,
      errors: 0,
      stray: 0,
      lastReceive: 0,
    };
    current = state;
    const lags: number[] = [];
    let expected = 0;
    let sent = 0;
    observer?.started?.(start);
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now();
        const due = Math.min(total, Math.floor(((now - start) * rate) / 1000) + 1);
        for (; sent < due; sent++) {
          const member = members[cursor++ % members.length]!; // round-robin senders
          state.due[sent] = start + (sent * 1000) / rate;
          lags.push(now - state.due[sent]!);
          expected += member.conversation.members.length; // the sender gets its own echo too
          observer?.sent?.(state.due[sent]! - start, member.conversation.members.length);
          member.socket.sendChat(`${sent}${PADDING}`, state.prefix + sent);
        }
        if (sent < total) setTimeout(tick, 1);
        else resolve();
      };
      setTimeout(tick, 5);
    });
    const sendEnd = performance.now();
    while (state.received < expected && performance.now() - sendEnd < drainMs) await delay(20);
    current = null;
    const lost = expected - state.received;
    const window = Math.max(state.lastReceive, sendEnd) - start;
    const lag = percentiles(lags);
    const report: RunReport = {
      rate,
      duration_s: durationS,
      sent,
      send_rate: round((sent * 1000) / (sendEnd - start)),
      expected_deliveries: expected,
      received_deliveries: state.received,
      lost,
      loss_pct: round((100 * lost) / expected, 3),
      duplicates: state.duplicates,
      error_events: state.errors,
      stray_events: state.stray,
      delivered_per_s: round((state.received * 1000) / window),
      latency_ms: percentiles(state.latencies),
      generator_send_lag_ms: { p99: lag.p99, max: lag.max },
      late_after_drain: 0,
    };
    finished.set(state.prefix, report);
    return report;
  }

  return { onEvent, warmUp, run };
}
