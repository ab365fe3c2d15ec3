import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { DatabaseLoad } from '../db/client.js';
import type { StatementSpan, StatementTimer } from '../domain/observer.js';

/** Latency buckets for PostgreSQL statements and flushes: sub-millisecond to a stalled second. */
const STATEMENT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * The service's Prometheus metrics, on a registry of its own per app (tests build several
 * apps in one process, and the default registry is a global).
 */
export interface MetricsOptions {
  databaseLoad?: () => DatabaseLoad;
  /** Set when tracing is on: named statements then run inside it (their spans carry the name). */
  statementSpan?: StatementSpan | undefined;
}

export function createMetrics(options: MetricsOptions = {}) {
  const { databaseLoad } = options;
  const registry = new Registry();
  let failuresSeen = 0;
  collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    openSockets: new Gauge({ name: 'chat_open_sockets', help: 'open WebSockets by kind', labelNames: ['kind'] as const, registers: [registry] }),
    rooms: new Gauge({ name: 'chat_subscribed_rooms', help: 'conversations this replica is subscribed to', registers: [registry] }),
    eventsPublished: new Counter({ name: 'chat_events_published_total', help: 'events handed to the bus', labelNames: ['kind'] as const, registers: [registry] }),
    eventsReceived: new Counter({ name: 'chat_bus_payloads_received_total', help: 'payloads this replica received from the bus', labelNames: ['kind'] as const, registers: [registry] }),
    eventsDelivered: new Counter({ name: 'chat_events_delivered_total', help: 'events written to sockets', labelNames: ['kind'] as const, registers: [registry] }),
    deliveryLatency: new Histogram({
      name: 'chat_publish_to_delivery_seconds',
      help: 'time from commit to hand-off to a local socket',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    eventLogReads: new Counter({ name: 'chat_event_log_reads_total', help: 'reads of the event log from PostgreSQL: replays (last_seq) and gap fills', registers: [registry] }),
    eventLogEventsRead: new Counter({ name: 'chat_event_log_events_read_total', help: 'events read from the event log by replays and gap fills', registers: [registry] }),
    slowConsumers: new Counter({ name: 'chat_slow_consumer_disconnects_total', help: 'sockets closed for reading too slowly', registers: [registry] }),
    rateLimited: new Counter({ name: 'chat_rate_limited_total', help: 'requests and frames refused by a rate limit', labelNames: ['scope'] as const, registers: [registry] }),
    rateLimiterUnavailable: new Counter({ name: 'chat_rate_limiter_unavailable_total', help: 'rate-limit decisions allowed unchecked because the limiter backend did not answer', labelNames: ['scope'] as const, registers: [registry] }),
    presenceChanges: new Counter({
      name: 'chat_presence_changes_total',
      help: 'users who came online or went offline, counted by the replica that made the change',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    presenceRedisCommands: new Counter({
      name: 'chat_presence_redis_commands_total',
      help: 'Redis commands of presence: change (2 per arrive or depart), lease (1 per tick), sweep, resync, read (REST views), publish (presence events)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    busResets: new Counter({ name: 'chat_bus_resets_total', help: 'broker reconnects after which subscriptions were restored (anything published meanwhile may be lost)', registers: [registry] }),
    publishFailures: new Counter({ name: 'chat_bus_publish_failures_total', help: 'publish attempts the bus refused or lost (retried; the events stay in PostgreSQL)', labelNames: ['kind'] as const, registers: [registry] }),
    publishDropped: new Counter({ name: 'chat_bus_publish_dropped_total', help: 'failed publishes dropped from a full retry queue (rooms repair them by their position checks)', labelNames: ['kind'] as const, registers: [registry] }),
    positionChecks: new Counter({ name: 'chat_room_position_checks_total', help: 'checks of quiet rooms against the database, and the rooms found behind', labelNames: ['outcome'] as const, registers: [registry] }),
    unavailableResponses: new Counter({ name: 'chat_http_unavailable_responses_total', help: 'HTTP requests answered 503 because a dependency was down', registers: [registry] }),
    httpDuration: new Histogram({
      name: 'chat_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    ready: new Gauge({
      name: 'chat_ready',
      help: '1 when this replica last answered /readyz with 200 (probes ask it every few seconds), 0 before its first answer and while not ready',
      registers: [registry],
    }),
    sendBatchSize: new Histogram({
      name: 'chat_send_batch_size',
      help: 'sends stored by one batch statement',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
    sendQueueDepth: new Gauge({ name: 'chat_send_queue_depth', help: 'sends waiting for the next batch statement', registers: [registry] }),
    statementDuration: new Histogram({
      name: 'chat_db_statement_duration_seconds',
      help: 'latency of the hot PostgreSQL statements, by name',
      labelNames: ['statement'] as const,
      buckets: STATEMENT_BUCKETS,
      registers: [registry],
    }),
    statementErrors: new Counter({ name: 'chat_db_statement_errors_total', help: 'hot statements that failed, by name', labelNames: ['statement'] as const, registers: [registry] }),
    dbInFlight: new Gauge({
      name: 'chat_db_queries_in_flight',
      help: 'statements and transactions running or waiting for a connection (above chat_db_pool_size: queueing)',
      registers: [registry],
      collect() {
        if (databaseLoad) this.set(databaseLoad().inFlight);
      },
    }),
    dbPoolSize: new Gauge({
      name: 'chat_db_pool_size',
      help: 'PostgreSQL connections this replica may open (DATABASE_POOL_SIZE)',
      registers: [registry],
      collect() {
        if (databaseLoad) this.set(databaseLoad().poolSize);
      },
    }),
    dbErrors: new Counter({
      name: 'chat_db_errors_total',
      help: 'statements that failed (any statement, any reason: outages, timeouts, constraint races)',
      registers: [registry],
      collect() {
        if (!databaseLoad) return;
        const { failures } = databaseLoad();
        if (failures > failuresSeen) this.inc(failures - failuresSeen);
        failuresSeen = failures;
      },
    }),
    notificationFlushSize: new Histogram({
      name: 'chat_notification_flush_size',
      help: '(conversation, sender) pairs written by one notification upsert',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers: [registry],
    }),
    searchIndexEvents: new Counter({
      name: 'chat_search_index_events_total',
      help: 'message events (sends, edits, deletes) applied to the search index',
      registers: [registry],
    }),
    searchIndexRounds: new Histogram({
      name: 'chat_search_index_round_seconds',
      help: 'time of one search index round (one transaction), written or failed (retried)',
      labelNames: ['outcome'] as const,
      buckets: STATEMENT_BUCKETS,
      registers: [registry],
    }),
    searchIndexBacklog: new Gauge({
      name: 'chat_search_index_backlog',
      help: 'conversations this replica has marked for the search index and not yet indexed',
      registers: [registry],
    }),
    notificationFlushDuration: new Histogram({
      name: 'chat_notification_flush_seconds',
      help: 'time to write one notification flush and hand its pushes to the bus',
      labelNames: ['outcome'] as const,
      buckets: STATEMENT_BUCKETS,
      registers: [registry],
    }),
    replayLength: new Histogram({
      name: 'chat_replay_events',
      help: 'events one socket caught up on from the event log (a resume with last_seq, or a gap repair)',
      buckets: [0, 1, 5, 10, 50, 100, 500, 1000, 5000, 10000],
      registers: [registry],
    }),
  };
  /** The domain's statement timer, reported on this registry. */
  const observe = (statement: Parameters<StatementTimer>[0], seconds: number, failed: boolean): void => {
    m.statementDuration.observe({ statement }, seconds);
    if (failed) m.statementErrors.inc({ statement });
  };
  const timeStatement: StatementTimer = options.statementSpan ? Object.assign(observe, { around: options.statementSpan }) : observe;
  return { ...m, timeStatement };
}

export type Metrics = ReturnType<typeof createMetrics>;
