import type { Config } from '../config.js';
import type { Logger } from '../domain/logger.js';
import { tracedBus } from './bus.js';
import { statementNames, tracedDatabase } from './database.js';
import { frameTracer } from './frames.js';
import { traceRequests } from './http.js';
import { tracedRateLimiter } from './rate-limiter.js';
import { startSdk } from './sdk.js';
import { tracedStorage } from './storage.js';
import type { Tracing } from './switch.js';

/** Tracing switched on (switch.ts imports this only then): the SDK started and every wrapper bound to it. */
export async function createTracing(options: { url: string; config: Config; logger: Logger }): Promise<Tracing> {
  const otel = await startSdk(options);
  const { api } = otel;
  const names = statementNames(otel);
  options.logger.info({ url: options.url, service: options.config.OTEL_SERVICE_NAME }, 'tracing on: spans are exported over OTLP/HTTP');
  return {
    database: (handle) => tracedDatabase(handle, otel, names),
    bus: (bus) => tracedBus(bus, otel),
    storage: (storage) => tracedStorage(storage, otel),
    rateLimiter: (limiter) => tracedRateLimiter(limiter, otel),
    statementSpan: names.statementSpan,
    sendContext: {
      capture: () => api.context.active(),
      run: (captured, work) => api.context.with(captured as ReturnType<typeof api.context.active>, work),
    },
    frameTracer: frameTracer(otel),
    traceRequests: (app) => traceRequests(app, otel),
    close: () => otel.close(),
  };
}
