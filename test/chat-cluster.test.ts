/** The chat contract on three replicas over a 3-master Redis Cluster (sharded pub/sub), faults included. */
import t from 'tap';
import { startTopology } from './helpers/replicas.js';
import { brokerRestartSuite, replicaKillSuite } from './suites/chat-faults.js';
import { chatSuite } from './suites/chat.js';
import { orderingSuite } from './suites/chat-ordering.js';
import { isolationSuite } from './suites/chat-scale-out.js';

t.test('three replicas on a 3-master Redis Cluster', async (t) => {
  const topology = await startTopology(t, { backend: 'cluster', replicas: 3 });
  const cluster = topology.cluster!;
  await chatSuite(t, topology);
  await orderingSuite(t, topology);
  await isolationSuite(t, topology);
  // The master that owns the conversation's slot: its sharded subscribers must come back.
  await brokerRestartSuite(t, topology, async (channel) => {
    const owner = await cluster.ownerOf(channel);
    return { stop: () => owner.stop(), start: () => owner.restart() };
  });
  // Last, and without restarting the victim (chat-faults covers restart()): saves a start-up.
  await replicaKillSuite(t, topology, { restart: false });
});
