/**
 * Readiness per dependency (src/health/routes.ts, README "Readiness"): a PostgreSQL blip
 * shorter than the grace keeps the pod ready, a longer one does not; a pod that never reached
 * PostgreSQL is not ready; the bus being down is reported but never fails readiness.
 */
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { buildTestApp, testDatabase } from './helpers/app.js';

t.test('readiness decides per dependency', async (t) => {
  const { database: real } = await testDatabase(t, 'pglite');
  let databaseUp = true;
  const database = { ...real, ping: async () => databaseUp && (await real.ping()) };
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  let busUp = true;
  const flakyBus = Object.assign(Object.create(bus) as typeof bus, { isHealthy: () => busUp });
  const app = await buildTestApp(t, { database, bus: flakyBus, env: { READINESS_DATABASE_GRACE_MS: '400' } });
  const ready = async () => {
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    return { code: response.statusCode, ...(response.json() as { status: string; checks: Record<string, boolean> }) };
  };

  t.match(await ready(), { code: 200, status: 'ready', checks: { database: true, bus: true, accepting: true } });
  databaseUp = false;
  t.match(await ready(), { code: 200, status: 'degraded', checks: { database: false } }, 'a database blip: still ready (200), reported');
  await new Promise((resolve) => setTimeout(resolve, 450));
  const gone = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(gone.statusCode, 503, 'past the grace: not ready');
  databaseUp = true;
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'back at once when it answers');

  busUp = false;
  const noBus = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(noBus.statusCode, 200, 'the bus down never fails readiness: REST serves without it');
  t.match(noBus.json(), { status: 'degraded', checks: { bus: false } }, 'but it is reported');
  busUp = true;

  app.lifecycle.draining = true;
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503, 'draining: not ready at once');
});

t.test('a pod that never reached PostgreSQL is not ready', async (t) => {
  const { database: real } = await testDatabase(t, 'pglite');
  const database = { ...real, ping: async () => false };
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const app = await buildTestApp(t, { database, bus });
  const response = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(response.statusCode, 503);
  t.match(response.json(), { status: 'unavailable', checks: { database: false } });
});
