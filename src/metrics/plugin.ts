import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { createMetrics, type Metrics, type MetricsOptions } from './metrics.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

/** `/metrics` for Prometheus, and HTTP latency by route template (never by raw URL: bounded labels). */
export const metricsPlugin = fp<MetricsOptions>(
  async (app: FastifyInstance, options) => {
    const metrics = createMetrics(options);
    app.decorate('metrics', metrics);
    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url;
      if (route && route !== '/metrics') {
        metrics.httpDuration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
        if (reply.statusCode === 503) metrics.unavailableResponses.inc();
        // The load balancer's and the kubelet's probes keep this current.
        if (route === '/readyz') metrics.ready.set(reply.statusCode === 200 ? 1 : 0);
      }
      done();
    });
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
      reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
    );
  },
  { name: 'metrics' },
);
