import type { Bus, BusLogger } from './bus.js';
import { createListenerRegistry } from './listener-registry.js';

/** The in-process bus plus the hooks the contract tests (and metrics) use. */
export interface MemoryBus extends Bus {
  /** Resolves at once: there is no broker to wait for. Mirrors `RedisBus.settled`. */
  settled(): Promise<void>;
  /** Payloads that reached this instance with at least one listener attached. */
  messagesReceived(): number;
}

export interface MemoryBusOptions {
  /** Where a throwing listener is reported; without one the error is rethrown asynchronously. */
  logger?: BusLogger;
}

/**
 * A bus for a single node: publishes reach this instance's own listeners and nothing else,
 * so two instances share nothing. Delivery runs on a microtask: `publish` stays asynchronous
 * for callers (as with a broker) while microtasks keep publish order.
 */
export function createMemoryBus(options: MemoryBusOptions = {}): MemoryBus {
  const listeners = createListenerRegistry({ logger: options.logger });
  const resetCallbacks = new Set<() => void>();
  let received = 0;
  let closed = false;

  return {
    async publish(channel, payload) {
      if (closed) throw new Error('bus is closed');
      if (!listeners.has(channel)) return;
      received++;
      // Listeners attached after the publish miss it, as they would with a broker;
      // listeners detached before delivery are skipped.
      const targets = listeners.snapshot(channel);
      queueMicrotask(() => listeners.deliver(targets, payload));
    },

    async subscribe(channel, listener) {
      if (closed) throw new Error('bus is closed');
      const attachment = listeners.attach(channel, listener);
      return () => {
        attachment.detach();
      };
    },

    onReset(callback) {
      // Nothing to reconnect to, so this never fires; kept for the contract.
      resetCallbacks.add(callback);
      return () => {
        resetCallbacks.delete(callback);
      };
    },

    subscribedChannels: () => listeners.channels(),
    isHealthy: () => !closed,
    settled: async () => {},
    messagesReceived: () => received,

    async close() {
      closed = true;
      listeners.clear();
      resetCallbacks.clear();
    },
  };
}
