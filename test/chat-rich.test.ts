/** Rich messages over the chat socket on two replicas sharing PostgreSQL and Redis. */
import t from 'tap';
import { startTopology } from './helpers/replicas.js';
import { chatRichSuite } from './suites/chat-rich.js';

const MAX_REPLAY_EVENTS = 20;

t.test('two replicas on Redis', async (t) => {
  const topology = await startTopology(t, { backend: 'redis', replicas: 2, env: { MAX_REPLAY_EVENTS: String(MAX_REPLAY_EVENTS) } });
  await chatRichSuite(t, topology, MAX_REPLAY_EVENTS);
});
