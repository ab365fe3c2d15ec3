/** The chat contract on real processes: two, then three replicas sharing PostgreSQL and Redis. */
import t from 'tap';
import { startTopology } from './helpers/replicas.js';
import { chatSuite } from './suites/chat.js';
import { orderingSuite } from './suites/chat-ordering.js';
import { isolationSuite, migrationsAppliedOnce } from './suites/chat-scale-out.js';

t.test('two replicas on Redis', async (t) => {
  const topology = await startTopology(t, { backend: 'redis', replicas: 2 });
  await chatSuite(t, topology);
  await orderingSuite(t, topology);
});

t.test('three replicas on Redis, started at once on an empty database', async (t) => {
  const topology = await startTopology(t, { backend: 'redis', replicas: 3 });
  await migrationsAppliedOnce(t, topology);
  await chatSuite(t, topology);
  await orderingSuite(t, topology);
  await isolationSuite(t, topology);
});
