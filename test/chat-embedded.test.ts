/** The chat contract on the embedded single node: one process, no DATABASE_URL or REDIS_URL (PGlite + in-process bus). */
import t from 'tap';
import { startTopology } from './helpers/replicas.js';
import { chatSuite } from './suites/chat.js';
import { orderingSuite } from './suites/chat-ordering.js';

t.test('embedded single node', async (t) => {
  const topology = await startTopology(t, { backend: 'embedded' });
  await chatSuite(t, topology);
  await orderingSuite(t, topology);
});
