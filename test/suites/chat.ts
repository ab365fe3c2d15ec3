/**
 * The WebSocket contract of API.md ("WebSocket: chat", "WebSocket: notifications",
 * "Notifications", "Scale-out") against real service processes: any topology from
 * test/helpers/replicas.ts (two or three replicas on Redis, three on a Redis Cluster, or the
 * embedded single node). Cases that need several replicas use `topology.at(i)`, which wraps
 * around, so on one node every client simply shares it. The feature suites beside this file
 * (chat-*.ts) share the topology and the helpers of test/helpers/chat-api.ts; the ordering
 * and scale-out suites (chat-ordering.ts, chat-scale-out.ts) are run by the topologies that
 * need them.
 */
import type { Test } from 'tap';
import type { Topology } from '../helpers/replicas.js';
import { chatCloseCodesSuite } from './chat-close-codes.js';
import { chatMembersSuite } from './chat-members.js';
import { chatMessagesSuite } from './chat-messages.js';
import { chatNotificationsSuite } from './chat-notifications.js';
import { chatReplaySuite } from './chat-replay.js';

export async function chatSuite(t: Test, topology: Topology): Promise<void> {
  await chatMessagesSuite(t, topology);
  await chatNotificationsSuite(t, topology);
  await chatCloseCodesSuite(t, topology);
  await chatReplaySuite(t, topology);
  await chatMembersSuite(t, topology);
}
