import type { FastifyInstance } from 'fastify';
import type { Bus } from '../bus/bus.js';
import type { Config } from '../config.js';
import type { DatabaseHandle } from '../db/client.js';
import type { ContextCarrier, StatementSpan } from '../domain/observer.js';
import type { Logger } from '../domain/logger.js';
import type { RateLimiter } from '../ratelimit/rate-limiter.js';
import type { FrameTracer } from '../realtime/traced-chat-connection.js';
import type { Storage } from '../storage/storage.js';

/**
 * Tracing, when it is on: wrappers the app puts around its parts, and hooks. When it is off
 * none of this exists, nothing is wrapped and no OpenTelemetry module is loaded: the service
 * runs exactly the code it runs without tracing.
 */
export interface Tracing {
  /** One span per statement (named by the statement's name where the code names it) and per transaction. */
  database(handle: DatabaseHandle): DatabaseHandle;
  /** A span per publish, with the trace context carried in event payloads; a delivery span per traced payload received. */
  bus(bus: Bus): Bus;
  storage(storage: Storage): Storage;
  rateLimiter(limiter: RateLimiter): RateLimiter;
  /** Gives named statements (`timeStatement`) their name in the span. */
  readonly statementSpan: StatementSpan;
  /** Lets a send batch's statement join the trace of the send it is attributed to. */
  readonly sendContext: ContextCarrier;
  /** A span per chat frame handled. */
  readonly frameTracer: FrameTracer;
  /** Fastify hooks: a span per HTTP request, named by its route template. */
  traceRequests(app: FastifyInstance): void;
  /** Exports the spans still buffered, then stops. */
  close(): Promise<void>;
}

/** Where traces are posted, from the standard variables; undefined: tracing is off. */
export function tracesUrl(config: Pick<Config, 'OTEL_EXPORTER_OTLP_ENDPOINT' | 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'>): string | undefined {
  if (config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  const base = config.OTEL_EXPORTER_OTLP_ENDPOINT;
  return base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined;
}

/**
 * Starts tracing when an OTLP endpoint is configured, else resolves to undefined. The SDK and
 * the wrappers are imported here, on demand: a replica without an endpoint never loads them.
 */
export async function startTracing(config: Config, logger: Logger): Promise<Tracing | undefined> {
  const url = tracesUrl(config);
  if (!url) return undefined;
  const { createTracing } = await import('./tracing.js');
  return createTracing({ url, config, logger });
}
