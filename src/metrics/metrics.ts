import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The service's Prometheus metrics, on a registry of its own per app (tests build several
 * apps in one process, and the default registry is a global).
 */
export function createMetrics() {
  const registry = new Registry();
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
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
