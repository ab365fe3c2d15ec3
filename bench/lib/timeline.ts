/**
 * A long run cut into fixed windows by when each message was due: a window's latencies,
 * sends and deliveries all belong to the messages due in it, so a stall shows in the window
 * whose messages it delayed, and delivered / expected per window is that window's loss.
 */
import { percentiles, round } from './stats.js';

export interface TimelineWindow {
  start_s: number;
  /** The run's end for the last window when the duration is not a multiple of the window. */
  end_s: number;
  sent: number;
  expected: number;
  delivered: number;
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
}

export interface Timeline {
  /** Each window's end, ms from the run's time zero: when to take its memory reading. */
  readonly endsMs: readonly number[];
  sent(offsetMs: number, recipients: number): void;
  delivered(offsetMs: number, latencyMs: number): void;
  windows(): TimelineWindow[];
}

export function createTimeline(durationMs: number, windowMs: number): Timeline {
  if (!(durationMs > 0) || !(windowMs > 0)) throw new Error('timeline: duration and window must be positive');
  const count = Math.ceil(durationMs / windowMs);
  const endsMs = [...Array(count).keys()].map((w) => Math.min(durationMs, (w + 1) * windowMs));
  const sent = new Array<number>(count).fill(0);
  const expected = new Array<number>(count).fill(0);
  const latencies: number[][] = endsMs.map(() => []);
  // Offsets outside [0, duration) cannot come from the harness; clamped rather than dropped.
  const index = (offsetMs: number): number => Math.min(count - 1, Math.max(0, Math.floor(offsetMs / windowMs)));
  return {
    endsMs,
    sent(offsetMs, recipients) {
      const w = index(offsetMs);
      sent[w]!++;
      expected[w]! += recipients;
    },
    delivered(offsetMs, latencyMs) {
      latencies[index(offsetMs)]!.push(latencyMs);
    },
    windows() {
      return latencies.map((values, w) => {
        const p = percentiles(values);
        return {
          start_s: round((w * windowMs) / 1000, 3)!,
          end_s: round(endsMs[w]! / 1000, 3)!,
          sent: sent[w]!,
          expected: expected[w]!,
          delivered: values.length,
          p50_ms: p.p50,
          p99_ms: p.p99,
          max_ms: p.max,
        };
      });
    },
  };
}

export interface RssGrowth {
  /** End of the window whose reading is the baseline. */
  baseline_s: number;
  baseline_kb: number | null;
  end_kb: number | null;
  growth_kb: number | null;
}

export interface SoakChecks {
  /** Last window's p99 / first window's p99; null if either window has no deliveries. */
  p99_last_over_first: number | null;
  /** Per replica, in replica order: RSS at the end minus RSS at the baseline. */
  rss_growth: RssGrowth[];
}

/**
 * The baseline is the reading at the end of the first minute, once start-up garbage and the
 * first allocations have settled; a run that is not longer than that has no such reading
 * before its end, so its first window's is used.
 */
export function soakChecks(windows: ReadonlyArray<Pick<TimelineWindow, 'end_s' | 'p99_ms'> & { rss_kb: readonly (number | null)[] }>, baselineS = 60): SoakChecks {
  const first = windows[0];
  const last = windows[windows.length - 1];
  if (!first || !last) return { p99_last_over_first: null, rss_growth: [] };
  const atMinute = windows.findIndex((w) => w.end_s >= baselineS);
  const baseline = atMinute >= 0 && atMinute < windows.length - 1 ? windows[atMinute]! : first;
  const ratio = first.p99_ms !== null && last.p99_ms !== null && first.p99_ms > 0 ? round(last.p99_ms / first.p99_ms) : null;
  return {
    p99_last_over_first: ratio,
    rss_growth: first.rss_kb.map((_, r) => {
      const from = baseline.rss_kb[r] ?? null;
      const to = last.rss_kb[r] ?? null;
      return { baseline_s: baseline.end_s, baseline_kb: from, end_kb: to, growth_kb: from !== null && to !== null ? to - from : null };
    }),
  };
}
