import { hostname } from 'node:os';
import type * as OtelApi from '@opentelemetry/api';
import type { Sampler } from '@opentelemetry/sdk-trace';
import type { Config } from '../config.js';
import type { Logger } from '../domain/logger.js';

export type Api = typeof OtelApi;

/** The started SDK as the wrappers use it. */
export interface Otel {
  readonly api: Api;
  readonly tracer: OtelApi.Tracer;
  /**
   * Runs `work` in a new span (a child of `parent`, by default the active context) that is the
   * active context throughout; the span records a thrown error and ends when `work` settles.
   */
  inSpan<R>(name: string, options: OtelApi.SpanOptions, work: (span: OtelApi.Span) => Promise<R>, parent?: OtelApi.Context): Promise<R>;
  /** Marks a span failed with `error`. */
  failed(span: OtelApi.Span, error: unknown): void;
  /** Exports what is buffered, then stops. */
  close(): Promise<void>;
}

export interface SdkOptions {
  url: string;
  config: Pick<Config, 'OTEL_SERVICE_NAME' | 'OTEL_TRACES_SAMPLER' | 'OTEL_TRACES_SAMPLER_ARG'>;
  logger: Logger;
}

/**
 * Loads and starts the OpenTelemetry SDK: a tracer provider with a batching OTLP/HTTP (JSON)
 * exporter, AsyncLocalStorage for the active context, W3C trace context propagation. The
 * packages are imported dynamically, here only, so that the bundle and a replica without
 * tracing never load them.
 */
export async function startSdk(options: SdkOptions): Promise<Otel> {
  const [api, sdk, resources, { AsyncLocalStorageContextManager }, core, { OTLPTraceExporter }] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/core'),
    import('@opentelemetry/exporter-trace-otlp-http'),
  ]);
  const { config, logger } = options;

  // The SDK's own troubles (an unreachable collector, a refused export) go to the service log.
  const warn = (message: string, ...args: unknown[]) => logger.warn({ detail: args.length ? args : undefined }, `tracing: ${message}`);
  const quiet = () => {};
  api.diag.setLogger({ error: warn, warn, info: quiet, debug: quiet, verbose: quiet }, api.DiagLogLevel.WARN);

  const ratio = config.OTEL_TRACES_SAMPLER_ARG;
  const samplers: Record<Config['OTEL_TRACES_SAMPLER'], () => Sampler> = {
    always_on: () => new sdk.AlwaysOnSampler(),
    always_off: () => new sdk.AlwaysOffSampler(),
    traceidratio: () => new sdk.TraceIdRatioBasedSampler(ratio),
    parentbased_always_on: () => new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() }),
    parentbased_always_off: () => new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() }),
    parentbased_traceidratio: () => new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(ratio) }),
  };

  // OTEL_RESOURCE_ATTRIBUTES adds to the resource; OTEL_SERVICE_NAME (the config) wins over it, as the specification says.
  const resource = resources
    .defaultResource()
    .merge(resources.resourceFromAttributes({ 'host.name': hostname(), 'process.pid': process.pid }))
    .merge(resources.detectResources({ detectors: [resources.resourceAttributesEnvDetector] }))
    .merge(resources.resourceFromAttributes({ 'service.name': config.OTEL_SERVICE_NAME }));

  // The batch processor's standard variables (the SDK no longer reads them itself).
  const processor = new sdk.BatchSpanProcessor({
    exporter: new OTLPTraceExporter({ url: options.url }),
    ...defined({
      scheduledDelayMillis: core.getNumberFromEnv('OTEL_BSP_SCHEDULE_DELAY'),
      maxQueueSize: core.getNumberFromEnv('OTEL_BSP_MAX_QUEUE_SIZE'),
      maxExportBatchSize: core.getNumberFromEnv('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
      exportTimeoutMillis: core.getNumberFromEnv('OTEL_BSP_EXPORT_TIMEOUT'),
    }),
  });
  const provider = new sdk.TracerProvider({ resource, sampler: samplers[config.OTEL_TRACES_SAMPLER](), spanProcessors: [processor] });

  // Process-wide, as OpenTelemetry's context is: a second app in the same process reuses them.
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  api.propagation.setGlobalPropagator(new core.W3CTraceContextPropagator());
  const tracer = provider.getTracer('chat-service');

  const failed = (span: OtelApi.Span, error: unknown): void => {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  };

  return {
    api,
    tracer,
    failed,
    inSpan(name, spanOptions, work, parent = api.context.active()) {
      const span = tracer.startSpan(name, spanOptions, parent);
      return api.context.with(api.trace.setSpan(parent, span), async () => {
        try {
          return await work(span);
        } catch (error) {
          failed(span, error);
          throw error;
        } finally {
          span.end();
        }
      });
    },
    close: () => provider.shutdown(),
  };
}

/** The entries whose value is set (the processor's options take no undefined). */
function defined<T extends Record<string, number | undefined>>(values: T): { [K in keyof T]?: number } {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as { [K in keyof T]?: number };
}
