/**
 * The client package (`@chat-service/client`) against a real service: an in-process app
 * listening on a loopback port (PGlite, in-process bus, local storage), driven only through `ChatClient`
 * with the platform's `fetch` and `WebSocket`: one app for the REST and socket suites, and a
 * rate-limited one (test/suites/client-*.ts). Elsewhere: delays in test/client-backoff.test.ts,
 * gaps and duplicates (which the real service never produces) from a scripted peer in
 * test/client-scripted-peer.test.ts, and reconnects across replica processes in
 * test/client-reconnect.test.ts.
 */
import t from 'tap';
import { startServer } from './helpers/client-service.js';
import { clientRateLimitSuite } from './suites/client-rate-limit.js';
import { clientRestSuite } from './suites/client-rest.js';
import { clientSocketsSuite } from './suites/client-sockets.js';

t.test('against a real service', async (t) => {
  const server = await startServer(t);
  await clientRestSuite(t, server);
  await clientSocketsSuite(t, server);
});

clientRateLimitSuite(t);
