import { join } from 'node:path';
import { ConfigError, loadConfig } from './config.js';
import { createDatabase } from './db/client.js';

/** `npm run migrate`: apply pending migrations once and exit (a Kubernetes Job, a compose one-shot). */
async function main(): Promise<void> {
  const config = loadConfig();
  const database = createDatabase({ url: config.DATABASE_URL, embeddedDir: join(config.DATA_DIR, 'pglite'), poolSize: 1 });
  try {
    await database.migrate();
    console.log(`migrations applied (${database.kind})`);
  } finally {
    await database.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
