/**
 * fanout: U users, C conversations of sizes 2,3,4 spanning both replicas, every member's
 * socket open. A steady run at --rate gives p50/p99; the step search gives capacity.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { log } from '../lib/log.js';
import type { Options } from '../lib/options.js';
import { createFanout, type Fanout } from '../load/fanout.js';
import { type StepReport, stepSearch } from '../load/step.js';
import { closeAll, connectMembers, createWorld, type Member } from '../load/world.js';
import { type Stack, type StackContext, startStack } from '../stack/stack.js';
import type { DeliverySummary } from '../lib/stats.js';

export interface FanoutResult {
  users: number;
  conversations: number;
  sockets: number;
  duration_s: number;
  capacity_msgs_per_s: number;
  capacity_is_lower_bound: boolean;
  first_failed_rate: number | null;
  criteria: { p99_ms_max: number; lost: 0; duplicates: 0; error_events: 0 };
  steady: DeliverySummary & { rate: number };
  steps: ReturnType<typeof compactStep>[];
}

function compactStep(s: StepReport) {
  return {
    rate: s.rate,
    held: s.held,
    sent: s.sent,
    send_rate: s.send_rate,
    expected_deliveries: s.expected_deliveries,
    lost: s.lost,
    late_after_drain: s.late_after_drain,
    duplicates: s.duplicates,
    error_events: s.error_events,
    delivered_per_s: s.delivered_per_s,
    p50_ms: s.latency_ms.p50,
    p95_ms: s.latency_ms.p95,
    p99_ms: s.latency_ms.p99,
    max_ms: s.latency_ms.max,
    send_lag_p99_ms: s.generator_send_lag_ms.p99,
  };
}

/**
 * The fan-out world on `stack`: users, conversations of sizes 2-4, every member's socket open
 * on replica (slot mod 2) and joined to its room. `onMembers` gets the sockets as soon as they
 * exist, so the caller can close them even if the warm-up fails.
 */
export async function openFanoutWorld(stack: Stack, options: Pick<Options, 'users' | 'conversations'>, label: string, onMembers: (members: Member[]) => void): Promise<{ fanout: Fanout; members: Member[] }> {
  log(`${label}: set-up, ${options.users} users, ${options.conversations} conversations`);
  const world = await createWorld(stack.urls, { users: options.users, conversations: options.conversations, kMin: 2, kMax: 4 });
  const fanout = createFanout();
  const members = await connectMembers(world, stack.urls, fanout.onEvent);
  onMembers(members);
  await fanout.warmUp(members);
  log(`${label}: ${members.length} sockets open and joined across ${stack.urls.length} replicas`);
  return { fanout, members };
}

export async function fanoutWorkload(context: StackContext, options: Options): Promise<FanoutResult> {
  const stack = await startStack(context, 'fanout');
  let members: Member[] = [];
  try {
    const { fanout } = await openFanoutWorld(stack, options, 'fanout', (open) => (members = open));

    log(`fanout: steady ${options.rate} msg/s for ${options.durationS} s`);
    const steady = await fanout.run(members, { rate: options.rate, durationS: options.durationS });
    log(`  steady: p50 ${steady.latency_ms.p50} ms, p99 ${steady.latency_ms.p99} ms, lost ${steady.lost}`);
    await delay(2000);

    log(`fanout: step search over ${options.rates.join(',')} msg/s, ${options.durationS} s each`);
    const step = await stepSearch(fanout, members, {
      rates: options.rates,
      durationS: options.durationS,
      p99LimitMs: options.p99LimitMs,
      refine: options.refine,
    });
    log(`fanout: capacity ${step.capacity_msgs_per_s} msg/s${step.capacity_is_lower_bound ? ' (lower bound: no step failed)' : ''}`);
    return {
      users: options.users,
      conversations: options.conversations,
      sockets: members.length,
      duration_s: options.durationS,
      capacity_msgs_per_s: step.capacity_msgs_per_s,
      capacity_is_lower_bound: step.capacity_is_lower_bound,
      first_failed_rate: step.first_failed_rate,
      criteria: step.criteria,
      steady: {
        rate: steady.rate,
        p50_ms: steady.latency_ms.p50,
        p95_ms: steady.latency_ms.p95,
        p99_ms: steady.latency_ms.p99,
        max_ms: steady.latency_ms.max,
        lost: steady.lost,
        duplicates: steady.duplicates,
        error_events: steady.error_events,
        expected_deliveries: steady.expected_deliveries,
        delivered_per_s: steady.delivered_per_s,
      },
      // Compacted last: late_after_drain of each step counts until the very end.
      steps: step.steps.map(compactStep),
    };
  } finally {
    closeAll(members);
    await stack.stop();
  }
}
