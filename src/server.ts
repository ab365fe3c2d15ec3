import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, usesGeneratedSecret } from './config.js';

/** The process: configuration, logger, listen, graceful close. Everything else is in app.ts. */
async function main(): Promise<void> {
  const config = loadConfig();
  const app = await buildApp({ config });
  if (usesGeneratedSecret()) app.log.warn('JWT_SECRET unset: using a generated secret kept in DATA_DIR (development only)');

  closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS, logger: app.log }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error');
    else app.log.info({ signal }, 'shutting down');
    app.lifecycle.draining = true;
    await app.close();
  });

  await app.listen({ port: config.PORT, host: config.HOST });
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(error.message);
  } else {
    console.error('start-up failed:', error);
  }
  process.exit(1);
});
