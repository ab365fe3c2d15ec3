import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';

const Health = Type.Object({ status: Type.String(), checks: Type.Optional(Type.Record(Type.String(), Type.Boolean())) });

/**
 * `/healthz`: the process answers. `/readyz`: this pod can serve, decided per dependency
 * (README, "Readiness"): draining fails it at once; PostgreSQL, shared by every pod, fails it
 * only once this pod has not reached it for READINESS_DATABASE_GRACE_MS (a blip takes no pod
 * out, a pod that never reached it is not ready); the bus (Redis, shared too) never does,
 * since REST serves without it. Every check is reported; `degraded` is ready with one down.
 */
export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/healthz', { schema: { hide: true, response: { 200: Health } } }, async () => ({ status: 'ok' }));

  let databaseSeenAt: number | undefined;
  app.get('/readyz', { schema: { hide: true, response: { 200: Health, 503: Health } } }, async (_request, reply) => {
    const checks = { database: await app.database.ping(), bus: app.bus.isHealthy(), accepting: !app.lifecycle.draining };
    const now = Date.now();
    if (checks.database) databaseSeenAt = now;
    const databaseUsable = checks.database || (databaseSeenAt !== undefined && now - databaseSeenAt < app.config.READINESS_DATABASE_GRACE_MS);
    const ready = checks.accepting && databaseUsable;
    const status = !ready ? 'unavailable' : Object.values(checks).every(Boolean) ? 'ready' : 'degraded';
    return reply.code(ready ? 200 : 503).send({ status, checks });
  });
};
