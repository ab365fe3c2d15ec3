/**
 * idle: what one open, authenticated socket costs a replica in resident memory. Set-up goes
 * through replica 2 only, so heap freed after it (password hashing above all) cannot be
 * reused by replica 1's sockets and hide their cost.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { log } from '../lib/log.js';
import type { Options } from '../lib/options.js';
import { round, slope } from '../lib/stats.js';
import { mapLimit } from '../load/api.js';
import { type ChatSocket, connectChat } from '../load/socket.js';
import { createWorld } from '../load/world.js';
import { memoryKb, rssKb } from '../stack/processes.js';
import { type StackContext, startStack } from '../stack/stack.js';

const BATCHES = 10;
const CONNECT_CONCURRENCY = 50;
const BATCH_SETTLE_MS = 300;
const QUIET_MS = 3000;

export interface IdleResult {
  n: number;
  opened: number;
  still_open: number;
  failed: number;
  pid: number;
  rss_before_kb: number;
  rss_after_kb: number;
  rss_after_close_kb: number;
  /** The anonymous (heap) and file-backed parts of RSS, before and after. */
  detail_kb: { before: { anon: number; file: number }; after: { anon: number; file: number } };
  /** (RSS after all are open and 3 s of quiet − RSS before) / sockets still open. */
  kb_per_socket: number | null;
  /** Least-squares slope of RSS over open sockets across the batch samples. */
  slope_kb_per_socket: number | null;
  /** [sockets open, RSS kB] after each batch. */
  samples: [number, number][];
  first_error?: string;
}

export async function idleWorkload(context: StackContext, options: Options): Promise<IdleResult> {
  const stack = await startStack(context, 'idle');
  const sockets: (ChatSocket | null)[] = [];
  try {
    const measured = stack.replicas[0];
    const setup = stack.replicas[1];
    if (!measured || !setup) throw new Error('idle needs two replicas');
    log(`idle: set-up through replica 2, ${options.users} users, ${options.conversations} conversations`);
    const world = await createWorld([setup.url], { users: options.users, conversations: options.conversations, kMin: 2, kMax: 4 });
    const memberships = world.conversations.flatMap((conversation) => conversation.members.map((u) => ({ conversation, user: world.users[u]! })));
    await delay(1000);
    const pid = measured.pid;
    const beforeDetail = memoryKb(pid);
    const before = beforeDetail.rss;
    const samples: [number, number][] = [[0, before]];
    let failed = 0;
    let firstError: string | undefined;
    for (let b = 0; b < BATCHES; b++) {
      const from = Math.floor((options.n * b) / BATCHES);
      const to = Math.floor((options.n * (b + 1)) / BATCHES);
      const batch = await mapLimit([...Array(to - from).keys()], CONNECT_CONCURRENCY, async (i) => {
        const { conversation, user } = memberships[(from + i) % memberships.length]!;
        try {
          return await connectChat(measured.url, conversation.id, user.token, () => {});
        } catch (error) {
          failed++;
          firstError ??= error instanceof Error ? error.message : String(error);
          return null;
        }
      });
      sockets.push(...batch);
      await delay(BATCH_SETTLE_MS);
      samples.push([sockets.length - failed, rssKb(pid)]);
      log(`  idle: ${sockets.length - failed} sockets, RSS ${samples[samples.length - 1]![1]} kB`);
    }
    await delay(QUIET_MS);
    const stillOpen = sockets.filter((s) => s?.open).length;
    const afterDetail = memoryKb(pid);
    const after = afterDetail.rss;
    for (const s of sockets) s?.close();
    await delay(1000);
    return {
      n: options.n,
      opened: options.n - failed,
      still_open: stillOpen,
      failed,
      pid,
      rss_before_kb: before,
      rss_after_kb: after,
      rss_after_close_kb: rssKb(pid),
      detail_kb: {
        before: { anon: beforeDetail.anon, file: beforeDetail.file },
        after: { anon: afterDetail.anon, file: afterDetail.file },
      },
      kb_per_socket: round((after - before) / Math.max(1, stillOpen)),
      slope_kb_per_socket: round(slope(samples)),
      samples,
      ...(firstError ? { first_error: firstError } : {}),
    };
  } finally {
    for (const s of sockets) s?.close();
    await stack.stop();
  }
}
