import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Context, Span } from '@opentelemetry/api';
import type { Otel } from './sdk.js';

/**
 * A server span per HTTP request, named `<method> <route template>` (never the raw URL),
 * continuing the caller's `traceparent` when it sends one. The span is the active context
 * for the request's hooks and its handler (set again before the handler: body parsing
 * resumes from the socket's context). WebSocket upgrades get none: their frames have spans.
 */
export function traceRequests(app: FastifyInstance, otel: Otel): void {
  const { api } = otel;
  const spans = new WeakMap<FastifyRequest, { span: Span; context: Context }>();
  const finish = (request: FastifyRequest, status: number | undefined): void => {
    const entry = spans.get(request);
    if (!entry) return;
    spans.delete(request);
    if (status === undefined) entry.span.setStatus({ code: api.SpanStatusCode.ERROR, message: 'request aborted' });
    else {
      entry.span.setAttribute('http.response.status_code', status);
      if (status >= 500) entry.span.setStatus({ code: api.SpanStatusCode.ERROR });
    }
    entry.span.end();
  };

  app.addHook('onRequest', (request, _reply, done) => {
    if (request.headers.upgrade !== undefined) return done();
    const parent = api.propagation.extract(api.ROOT_CONTEXT, request.headers);
    const route = request.routeOptions.url;
    const span = otel.tracer.startSpan(
      route ? `${request.method} ${route}` : request.method,
      {
        kind: api.SpanKind.SERVER,
        attributes: { 'http.request.method': request.method, 'url.path': request.url.split('?')[0]!, ...(route ? { 'http.route': route } : {}) },
      },
      parent,
    );
    const context = api.trace.setSpan(parent, span);
    spans.set(request, { span, context });
    api.context.with(context, done);
  });
  app.addHook('preHandler', (request, _reply, done) => {
    const entry = spans.get(request);
    if (entry) api.context.with(entry.context, done);
    else done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    finish(request, reply.statusCode);
    done();
  });
  app.addHook('onRequestAbort', (request, done) => {
    finish(request, undefined);
    done();
  });
}
