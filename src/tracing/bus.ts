import type { Bus } from '../bus/bus.js';
import { traceparentOf, withTraceparent } from '../messages/event-codec.js';
import type { Otel } from './sdk.js';

/**
 * The bus with a producer span per publish and a consumer span per traced payload received.
 * An event's payload carries the publish span's traceparent in its header (event-codec.ts),
 * so its delivery on any replica is a child of the publish: one trace from the sender's
 * request or frame to every replica that delivers it. The JSON handed to sockets is untouched.
 */
export function tracedBus(bus: Bus, otel: Otel): Bus {
  const { api } = otel;
  return {
    publish: (channel, payload) =>
      otel.inSpan(
        'publish',
        { kind: api.SpanKind.PRODUCER, attributes: { 'messaging.system': 'redis', 'messaging.operation.type': 'send', 'messaging.destination.name': channel } },
        () => {
          const carrier: Record<string, string> = {};
          api.propagation.inject(api.context.active(), carrier);
          return bus.publish(channel, carrier.traceparent ? withTraceparent(payload, carrier.traceparent) : payload);
        },
      ),
    subscribe: (channel, listener) =>
      bus.subscribe(channel, (payload) => {
        const traceparent = traceparentOf(payload);
        // Typing and notification payloads carry no trace: they are delivered without a span.
        if (!traceparent) return listener(payload);
        const parent = api.propagation.extract(api.ROOT_CONTEXT, { traceparent });
        const span = otel.tracer.startSpan(
          'deliver',
          { kind: api.SpanKind.CONSUMER, attributes: { 'messaging.system': 'redis', 'messaging.operation.type': 'process', 'messaging.destination.name': channel } },
          parent,
        );
        try {
          api.context.with(api.trace.setSpan(parent, span), () => listener(payload));
        } catch (error) {
          otel.failed(span, error);
          throw error;
        } finally {
          span.end();
        }
      }),
    onReset: (callback) => bus.onReset(callback),
    subscribedChannels: () => bus.subscribedChannels(),
    isHealthy: () => bus.isHealthy(),
    close: () => bus.close(),
  };
}
