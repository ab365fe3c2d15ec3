import { setTimeout as delay } from 'node:timers/promises';
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, usesGeneratedSecret, type Config } from './config.js';

/**
 * Share of SHUTDOWN_TIMEOUT_MS kept for closing pools once the stragglers are cut off: a
 * client that never finishes its request must not turn a clean exit into a kill.
 */
const FORCE_CLOSE_MARGIN_MS = 2000;

/** The process: configuration, logger, listen, graceful close. Everything else is in app.ts. */
async function main(): Promise<void> {
  const config = loadConfig();
  // Log lines are written asynchronously: under load, the lines gathered while one write is
  // under way go out in the next (a write syscall per line cost more than the request's query).
  // pino flushes what is pending synchronously when the process exits.
  const app = await buildApp({ config, logger: { level: config.LOG_LEVEL, stream: pino.destination({ dest: 1, sync: false }) } });
  if (usesGeneratedSecret()) app.log.warn('JWT_SECRET unset: using a generated secret kept in DATA_DIR (development only)');

  // SIGTERM/SIGINT: drain, then exit 0; past SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS, exit 1.
  // A second signal exits at once.
  closeWithGrace(
    { delay: config.SHUTDOWN_DELAY_MS + config.SHUTDOWN_TIMEOUT_MS, logger: app.log },
    async ({ signal, err }) => {
      if (err) app.log.error({ err }, 'shutting down after an error');
      else app.log.info({ signal }, 'shutting down');
      await drain(app, config);
    },
  );

  await app.listen({ port: config.PORT, host: config.HOST });
}

/**
 * The shutdown sequence, in this order:
 * 1. readiness fails at once (`/readyz` 503), so load balancers take this replica out;
 * 2. after SHUTDOWN_DELAY_MS (time for them to notice; 0 behind a Kubernetes preStop sleep),
 *    WebSockets are closed with 1001 (clients reconnect elsewhere and resume by seq), then
 *    `app.close()`: new requests get 503 with `Connection: close`, the listener stops
 *    accepting, and requests in flight finish (every response while draining closes its
 *    keep-alive connection);
 * 3. once the last connection is gone, the onClose hooks publish the sends still being
 *    stored, flush notifications, then close the database, bus and storage.
 * Connections still open near the end of SHUTDOWN_TIMEOUT_MS are cut so that step 3 runs.
 */
async function drain(app: FastifyInstance, config: Config): Promise<void> {
  app.lifecycle.draining = true;
  if (config.SHUTDOWN_DELAY_MS > 0) {
    app.log.info({ delayMs: config.SHUTDOWN_DELAY_MS }, 'readiness failing; waiting before refusing connections');
    await delay(config.SHUTDOWN_DELAY_MS);
  }
  const margin = Math.min(FORCE_CLOSE_MARGIN_MS, config.SHUTDOWN_TIMEOUT_MS / 4);
  const cutOff = setTimeout(() => {
    app.log.warn('drain deadline: closing the connections still open');
    app.server.closeAllConnections();
    for (const client of app.websocketServer.clients) client.terminate();
  }, config.SHUTDOWN_TIMEOUT_MS - margin);
  try {
    await app.close();
  } finally {
    clearTimeout(cutOff);
  }
  app.log.info('closed');
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(error.message);
  } else {
    console.error('start-up failed:', error);
  }
  process.exit(1);
});
