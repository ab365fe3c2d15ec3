/** Faults under live traffic on three replicas over Redis: a replica SIGKILLed, one stopped mid-burst, Redis restarted. */
import t from 'tap';
import { startTopology } from './helpers/replicas.js';
import { brokerRestartSuite, gracefulStopSuite, replicaKillSuite } from './suites/chat-faults.js';

t.test('three replicas on Redis', async (t) => {
  const topology = await startTopology(t, { backend: 'redis', replicas: 3 });
  const redis = topology.redis!;
  await replicaKillSuite(t, topology);
  await gracefulStopSuite(t, topology);
  await brokerRestartSuite(t, topology, async () => ({ stop: () => redis.stop(), start: () => redis.restart() }));
});
