/**
 * crowd: a big conversation next to the small ones (issue 14). The fanout world of small
 * conversations takes --rate msg/s twice on the same replicas: alone, then while one
 * conversation of --crowd-members members (a socket each, spread over both replicas, so every
 * message is that many deliveries) takes --crowd-rate msg/s. What it reports is how much the
 * big conversation costs the small ones: their delivery p99 with it over their p99 without it
 * (goal: at most 2), measured in the same run.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { log } from '../lib/log.js';
import type { Options } from '../lib/options.js';
import type { DeliverySummary } from '../lib/stats.js';
import { createFanout, type RunReport } from '../load/fanout.js';
import { closeAll, connectMembers, createWorld, type Member } from '../load/world.js';
import { type StackContext, startStack } from '../stack/stack.js';
import { openFanoutWorld } from './fanout.js';

export interface CrowdResult {
  small: { conversations: number; sockets: number; rate: number; alone: DeliverySummary; beside_crowd: DeliverySummary };
  crowd: { members: number; rate: number; run: DeliverySummary };
  duration_s: number;
  /** beside_crowd.p99 / alone.p99 of the small conversations; goal <= 2. */
  small_p99_ratio: number | null;
}

const summary = (report: RunReport): DeliverySummary => ({
  p50_ms: report.latency_ms.p50,
  p95_ms: report.latency_ms.p95,
  p99_ms: report.latency_ms.p99,
  max_ms: report.latency_ms.max,
  lost: report.lost,
  duplicates: report.duplicates,
  error_events: report.error_events,
  expected_deliveries: report.expected_deliveries,
  delivered_per_s: report.delivered_per_s,
});

export async function crowdWorkload(context: StackContext, options: Options): Promise<CrowdResult> {
  const stack = await startStack(context, 'crowd');
  let small: Member[] = [];
  let crowd: Member[] = [];
  try {
    const { fanout } = await openFanoutWorld(stack, options, 'crowd', (open) => (small = open));
    log(`crowd: ${options.crowdMembers} members in one conversation`);
    const world = await createWorld(stack.urls, { users: options.crowdMembers, conversations: 1, kMin: options.crowdMembers, kMax: options.crowdMembers });
    const big = createFanout();
    crowd = await connectMembers(world, stack.urls, big.onEvent);
    await big.warmUp(crowd);
    log(`crowd: ${crowd.length} sockets open and joined`);

    log(`crowd: small conversations alone, ${options.rate} msg/s for ${options.durationS} s`);
    const alone = await fanout.run(small, { rate: options.rate, durationS: options.durationS });
    await delay(2000);
    log(`crowd: the same beside ${options.crowdRate} msg/s to the big conversation`);
    const [beside, crowdRun] = await Promise.all([
      fanout.run(small, { rate: options.rate, durationS: options.durationS }),
      big.run(crowd, { rate: options.crowdRate, durationS: options.durationS }),
    ]);
    const ratio = alone.latency_ms.p99 && beside.latency_ms.p99 ? Math.round((beside.latency_ms.p99 / alone.latency_ms.p99) * 100) / 100 : null;
    log(`crowd: small p99 ${alone.latency_ms.p99} ms alone, ${beside.latency_ms.p99} ms beside the crowd (${ratio} ×); crowd p99 ${crowdRun.latency_ms.p99} ms`);
    return {
      small: { conversations: options.conversations, sockets: small.length, rate: options.rate, alone: summary(alone), beside_crowd: summary(beside) },
      crowd: { members: crowd.length, rate: options.crowdRate, run: summary(crowdRun) },
      duration_s: options.durationS,
      small_p99_ratio: ratio,
    };
  } finally {
    closeAll(small);
    closeAll(crowd);
    await stack.stop();
  }
}
