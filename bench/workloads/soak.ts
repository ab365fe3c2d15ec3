/**
 * soak: the fanout world under one long open-loop run at --soak-rate, cut into 10 s windows
 * by due time, with both replicas' RSS read at each window's end. What it looks for is drift:
 * a p99 that climbs as messages pile up in the database, or memory that keeps growing.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { log } from '../lib/log.js';
import type { Options } from '../lib/options.js';
import { alignTable, sparkline } from '../lib/text-chart.js';
import { createTimeline, type SoakChecks, soakChecks, type TimelineWindow } from '../lib/timeline.js';
import { closeAll, type Member } from '../load/world.js';
import { rssKb } from '../stack/processes.js';
import { type StackContext, startStack } from '../stack/stack.js';
import { openFanoutWorld } from './fanout.js';
import type { DeliverySummary } from '../lib/stats.js';

const WINDOW_S = 10;
/** Progress on stderr this often during the run, so a ten-minute run is seen to be alive. */
const PROGRESS_EVERY_S = 60;

export type SoakWindow = TimelineWindow & {
  /** Each replica's VmRSS at the window's end, replica order; null if it could not be read. */
  rss_kb: (number | null)[];
};

export interface SoakResult {
  users: number;
  conversations: number;
  sockets: number;
  rate: number;
  duration_s: number;
  window_s: number;
  overall: DeliverySummary & {
    sent: number;
    send_rate: number | null;
    received_deliveries: number;
    stray_events: number;
    send_lag_p99_ms: number | null;
  };
  checks: SoakChecks;
  timeline: SoakWindow[];
}

const readRss = (pid: number): number | null => {
  try {
    return rssKb(pid);
  } catch {
    return null; // the replica is gone; the run's loss figures say what that cost
  }
};

/** One reading per pid at each of `endsMs` after `startMs` (performance.now() clock). */
async function sampleRss(pids: readonly number[], startMs: number, endsMs: readonly number[]): Promise<(number | null)[][]> {
  const samples: (number | null)[][] = [];
  for (const end of endsMs) {
    await delay(Math.max(0, startMs + end - performance.now()));
    samples.push(pids.map(readRss));
    if (Math.round(end / 1000) % PROGRESS_EVERY_S === 0) {
      log(`  soak: ${Math.round(end / 1000)} s, RSS ${samples[samples.length - 1]!.map(mb).join(' / ')} MB`);
    }
  }
  return samples;
}

const mb = (kb: number | null): string => (kb === null ? '-' : (kb / 1024).toFixed(1));
const ms = (v: number | null): string => (v === null ? '-' : v.toFixed(1));

function formatTimeline(timeline: readonly SoakWindow[]): string {
  const header = ['start s', 'p50 ms', 'p99 ms', 'max ms', 'sent', 'delivered', 'RSS A MB', 'RSS B MB'];
  const rows = timeline.map((w) => [String(w.start_s), ms(w.p50_ms), ms(w.p99_ms), ms(w.max_ms), String(w.sent), String(w.delivered), mb(w.rss_kb[0] ?? null), mb(w.rss_kb[1] ?? null)]);
  const p99 = timeline.map((w) => w.p99_ms);
  const known = p99.filter((v): v is number => v !== null);
  const scale = known.length > 0 ? `0 to ${Math.max(...known).toFixed(1)} ms` : 'no deliveries';
  return `${alignTable(header, rows)}\np99 per window: ${sparkline(p99)}  (${scale})`;
}

export async function soakWorkload(context: StackContext, options: Options): Promise<SoakResult> {
  const stack = await startStack(context, 'soak');
  let members: Member[] = [];
  try {
    const { fanout } = await openFanoutWorld(stack, options, 'soak', (open) => (members = open));
    const { soakRate: rate, soakDurationS: durationS } = options;
    const timeline = createTimeline(durationS * 1000, WINDOW_S * 1000);
    const pids = stack.replicas.map((r) => r.pid);
    let sampling: Promise<(number | null)[][]> = Promise.resolve([]);
    log(`soak: ${rate} msg/s for ${durationS} s, ${WINDOW_S} s windows`);
    const run = await fanout.run(members, {
      rate,
      durationS,
      observer: {
        started: (startMs) => (sampling = sampleRss(pids, startMs, timeline.endsMs)),
        sent: timeline.sent,
        delivered: timeline.delivered,
      },
    });
    const rss = await sampling;
    const windows: SoakWindow[] = timeline.windows().map((w, i) => ({ ...w, rss_kb: rss[i] ?? pids.map(() => null) }));
    const checks = soakChecks(windows);
    process.stderr.write(`${formatTimeline(windows)}\n`);
    const growth = checks.rss_growth.map((g) => (g.growth_kb === null ? '-' : `${g.growth_kb >= 0 ? '+' : ''}${mb(g.growth_kb)}`)).join(' / ');
    log(`soak: p50 ${run.latency_ms.p50} ms, p99 ${run.latency_ms.p99} ms, lost ${run.lost}, dup ${run.duplicates}, errors ${run.error_events}; last/first window p99 ${checks.p99_last_over_first ?? '-'}; RSS since ${checks.rss_growth[0]?.baseline_s ?? '-'} s ${growth} MB`);
    return {
      users: options.users,
      conversations: options.conversations,
      sockets: members.length,
      rate,
      duration_s: durationS,
      window_s: WINDOW_S,
      overall: {
        sent: run.sent,
        send_rate: run.send_rate,
        expected_deliveries: run.expected_deliveries,
        received_deliveries: run.received_deliveries,
        p50_ms: run.latency_ms.p50,
        p95_ms: run.latency_ms.p95,
        p99_ms: run.latency_ms.p99,
        max_ms: run.latency_ms.max,
        lost: run.lost,
        duplicates: run.duplicates,
        error_events: run.error_events,
        stray_events: run.stray_events,
        delivered_per_s: run.delivered_per_s,
        send_lag_p99_ms: run.generator_send_lag_ms.p99,
      },
      checks,
      timeline: windows,
    };
  } finally {
    closeAll(members);
    await stack.stop();
  }
}
