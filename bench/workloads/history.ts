/**
 * history: 60 messages in one conversation, then autocannon reads the default page
 * (GET /api/conversations/{id}/messages/, the newest 50) with a participant's token,
 * one autocannon per replica at the same time, as a balancer would spread the reads.
 */
import autocannon from 'autocannon';
import { log } from '../lib/log.js';
import type { Options } from '../lib/options.js';
import { round } from '../lib/stats.js';
import { request } from '../load/api.js';
import { connectChat } from '../load/socket.js';
import { createWorld } from '../load/world.js';
import { type StackContext, startStack } from '../stack/stack.js';

const MESSAGES = 60;
const ECHO_TIMEOUT_MS = 10_000;

export interface HistoryResult {
  duration_s: number;
  connections_per_replica: number;
  page_size: number;
  /** Sum over the replicas. */
  req_per_s: number;
  /** The worse replica's p99. */
  p99_ms: number;
  non2xx: number;
  errors: number;
  replicas: { url: string; req_per_s: number; p50_ms: number; p99_ms: number; non2xx: number; errors: number; timeouts: number }[];
}

/** Sends `count` messages one at a time over a socket, each after the previous one's echo. */
async function seedMessages(url: string, conversationId: number, token: string, count: number): Promise<void> {
  let echoed: (() => void) | null = null;
  const socket = await connectChat(url, conversationId, token, (event) => {
    if (event.type === 'chat.message') echoed?.();
  });
  try {
    for (let i = 0; i < count; i++) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`history: no echo for message ${i} within ${ECHO_TIMEOUT_MS} ms`)), ECHO_TIMEOUT_MS);
        echoed = () => {
          clearTimeout(timer);
          echoed = null;
          resolve();
        };
        socket.sendChat(`history message ${i}`, `h-${i}`);
      });
    }
  } finally {
    socket.close();
  }
}

export async function historyWorkload(context: StackContext, options: Options): Promise<HistoryResult> {
  const stack = await startStack(context, 'history');
  try {
    const world = await createWorld(stack.urls, { users: 2, conversations: 1, kMin: 2, kMax: 2 });
    const conversation = world.conversations[0]!;
    const user = world.users[conversation.members[0]!]!;
    await seedMessages(stack.urls[0]!, conversation.id, user.token, MESSAGES);
    const path = `/api/conversations/${conversation.id}/messages/`;
    const page = await request(stack.urls[0]!, 'GET', path, { token: user.token });
    const pageSize = Array.isArray(page) ? page.length : 0;
    log(`history: ${MESSAGES} messages stored, page of ${pageSize}; ${options.connections} connections per replica for ${options.durationS} s`);
    const results = await Promise.all(
      stack.urls.map((url) =>
        autocannon({
          url: url + path,
          connections: options.connections,
          duration: options.durationS,
          headers: { authorization: `Bearer ${user.token}` },
        }),
      ),
    );
    const replicas = results.map((r, i) => ({
      url: stack.urls[i]!,
      req_per_s: r.requests.average,
      p50_ms: r.latency.p50,
      p99_ms: r.latency.p99,
      non2xx: r.non2xx,
      errors: r.errors,
      timeouts: r.timeouts,
    }));
    return {
      duration_s: options.durationS,
      connections_per_replica: options.connections,
      page_size: pageSize,
      req_per_s: round(replicas.reduce((a, r) => a + r.req_per_s, 0)) ?? 0,
      p99_ms: Math.max(...replicas.map((r) => r.p99_ms)),
      non2xx: replicas.reduce((a, r) => a + r.non2xx, 0),
      errors: replicas.reduce((a, r) => a + r.errors, 0),
      replicas,
    };
  } finally {
    await stack.stop();
  }
}
