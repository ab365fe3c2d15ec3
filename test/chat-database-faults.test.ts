/**
 * PostgreSQL faults under live traffic on two replicas over Redis, each on a PostgreSQL 15
 * of the test's own (never the shared server): a crash (SIGKILL) and restart, and (skipped
 * for now, see below) a failover from a primary to its promoted streaming standby, with
 * DATABASE_URL naming both hosts and target_session_attrs=read-write.
 */
import t from 'tap';
import { startTopology } from './helpers/replicas.js';
import { createDatabaseOn, promote, startPostgresServer } from './helpers/postgres-server.js';
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

// Not in the suite yet: it passed once (107 acknowledged, 0 lost, 0 duplicated, 1.2 s to the
// first acknowledged send) and failed twice in five runs: once a socket send went unanswered
// for 30 s after the promotion, once sends kept failing with 25006 (read-only transaction)
// for 30 s although the promoted standby accepted writes on new connections. Both need a look
// at how postgres.js picks and keeps hosts of a multi-host URL before this can gate a merge.
t.skip('PostgreSQL failover to a promoted standby', async (t) => {
  const primary = await startPostgresServer(t);
  const url = await createDatabaseOn(primary, 'chat_failover');
  const standby = await startPostgresServer(t, { standbyOf: primary });
  const name = new URL(url).pathname.slice(1);
  const databaseUrl = `postgres://postgres@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/${name}?target_session_attrs=read-write`;
  const topology = await startTopology(t, { backend: 'redis', replicas: 2, databaseUrl, env: FAULT_ENV });
  await databaseFaultSuite(t, topology, 'PostgreSQL failover', async () => {
    await primary.stop('kill');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await promote(standby);
  });
});
