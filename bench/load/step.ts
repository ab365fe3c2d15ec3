/**
 * Capacity search: fan-out runs at rising rates on the same sockets until one fails (p99 over
 * the limit, or anything lost, duplicated or refused), then `refine` bisections between the
 * last rate that held and the first that failed. Capacity is the highest rate that held.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { log } from '../lib/log.js';
import type { Fanout, RunReport } from './fanout.js';
import type { Member } from './world.js';

export type StepReport = RunReport & { held: boolean };

export interface StepResult {
  capacity_msgs_per_s: number;
  first_failed_rate: number | null;
  /** True when no step failed: the rate list ran out first. */
  capacity_is_lower_bound: boolean;
  criteria: { p99_ms_max: number; lost: 0; duplicates: 0; error_events: 0 };
  steps: StepReport[];
}

export interface StepOptions {
  rates: number[];
  durationS: number;
  p99LimitMs: number;
  refine: number;
  /** Quiet time after each step, so a failed step's backlog drains before the next. */
  pauseMs?: number;
}

export async function stepSearch(fanout: Fanout, members: readonly Member[], options: StepOptions): Promise<StepResult> {
  const { rates, durationS, p99LimitMs, refine, pauseMs = 2000 } = options;
  const steps: StepReport[] = [];
  const attempt = async (rate: number): Promise<boolean> => {
    const report = await fanout.run(members, { rate, durationS });
    const p99 = report.latency_ms.p99;
    const held = report.lost === 0 && report.duplicates === 0 && report.error_events === 0 && p99 !== null && p99 <= p99LimitMs;
    // The same object the harness keeps: its late_after_drain still grows during later steps.
    steps.push(Object.assign(report, { held }));
    log(`  step ${rate} msg/s: p99 ${p99} ms, lost ${report.lost}, dup ${report.duplicates}, errors ${report.error_events} -> ${held ? 'held' : 'failed'}`);
    await delay(pauseMs);
    return held;
  };
  let capacity = 0;
  let failedAt: number | null = null;
  for (const rate of [...rates].sort((a, b) => a - b)) {
    if (!(await attempt(rate))) {
      failedAt = rate;
      break;
    }
    capacity = rate;
  }
  for (let i = 0; i < refine && failedAt !== null; i++) {
    const mid = Math.round((capacity + failedAt) / 2);
    if (mid === capacity || mid === failedAt) break;
    if (await attempt(mid)) capacity = mid;
    else failedAt = mid;
  }
  return {
    capacity_msgs_per_s: capacity,
    first_failed_rate: failedAt,
    capacity_is_lower_bound: failedAt === null,
    criteria: { p99_ms_max: p99LimitMs, lost: 0, duplicates: 0, error_events: 0 },
    steps,
  };
}
