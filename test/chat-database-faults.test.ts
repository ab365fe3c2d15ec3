/**
 * PostgreSQL faults under live traffic on two replicas over Redis, on a PostgreSQL 15 of
 * the test's own (never the shared server): a crash (SIGKILL) and restart. Failover to a
 * promoted standby: chat-postgres-failover.test.ts.
 */
import t from 'tap';
import { startTopology } from './helpers/replicas.js';
import { createDatabaseOn, startPostgresServer } from './helpers/postgres-server.js';
import { databaseFaultSuite } from './suites/database-faults.js';

const FAULT_ENV = { DATABASE_CONNECT_TIMEOUT_MS: '2000', READINESS_DATABASE_GRACE_MS: '10000' };

t.test('PostgreSQL crash and restart', async (t) => {
  const server = await startPostgresServer(t);
  const databaseUrl = await createDatabaseOn(server, 'chat_restart');
  const topology = await startTopology(t, { backend: 'redis', replicas: 2, databaseUrl, env: FAULT_ENV });
  await databaseFaultSuite(t, topology, 'PostgreSQL SIGKILL + restart', async () => {
    await server.stop('kill');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await server.start();
  });
});
