/**
 * PostgreSQL failover under live traffic: a primary and its streaming standby of the test's
 * own (synchronous replication, so an acknowledged commit is on both), two replicas over
 * Redis with DATABASE_URL naming both hosts and target_session_attrs=read-write; the primary
 * SIGKILLed mid-traffic and the standby promoted (what a failover manager does). The
 * replicas are not restarted: they must find the new primary by themselves
 * (db/read-write-host.ts), answer every send meanwhile, and lose or double nothing.
 */
import t from 'tap';
import { startTopology } from './helpers/replicas.js';
import { createDatabaseOn, promote, startPostgresServer, replicateSynchronously } from './helpers/postgres-server.js';
import { databaseFaultSuite } from './suites/database-faults.js';

const FAULT_ENV = { DATABASE_CONNECT_TIMEOUT_MS: '2000', READINESS_DATABASE_GRACE_MS: '10000' };

t.test('PostgreSQL failover to a promoted standby', async (t) => {
  const primary = await startPostgresServer(t);
  const url = await createDatabaseOn(primary, 'chat_failover');
  const standby = await startPostgresServer(t, { standbyOf: primary });
  await replicateSynchronously(primary);
  const name = new URL(url).pathname.slice(1);
  const databaseUrl = `postgres://postgres@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/${name}?target_session_attrs=read-write`;
  const topology = await startTopology(t, { backend: 'redis', replicas: 2, databaseUrl, env: FAULT_ENV });
  await databaseFaultSuite(
    t,
    topology,
    'PostgreSQL failover',
    async () => {
      await primary.stop('kill');
      await promote(standby);
    },
    // The standby is promoted as soon as the primary is gone: the service must follow within
    // a few seconds, not keep failing read-only.
    { recoverWithinMs: 5_000 },
  );
});
