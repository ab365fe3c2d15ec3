/**
 * Bad input, rate limits and slow readers on real processes: two replicas on Redis with
 * MESSAGE_RATE_LIMIT=5, and one replica with a small outgoing buffer per socket.
 */
import t from 'tap';
import { startTopology } from './helpers/replicas.js';
import { framesSuite, rateLimitSuite, slowConsumerSuite } from './suites/chat-frames.js';

t.test('frames, rate limit and slow consumers', async (t) => {
  const [limited, small] = await Promise.all([
    startTopology(t, { backend: 'redis', replicas: 2, env: { MESSAGE_RATE_LIMIT: '5' } }),
    startTopology(t, { backend: 'redis', replicas: 1, env: { WS_MAX_BUFFERED_BYTES: String(16 * 1024), MAX_MESSAGE_LENGTH: '100000' } }),
  ]);
  await framesSuite(t, limited);
  await rateLimitSuite(t, limited);
  await slowConsumerSuite(t, small);
});
