import type { Bus, BusListener } from './bus.js';
import type { BusLogger } from './bus-redis.js';

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

/** A distinct object per `subscribe()` call, so the same function attached twice counts twice. */
interface Attachment {
  readonly listener: BusListener;
}

/**
 * A bus for a single node: publishes reach this instance's own listeners and nothing else,
 * so two instances share nothing. Delivery runs on a microtask: `publish` stays asynchronous
 * for callers (as with a broker) while microtasks keep publish order.
 */
export function createMemoryBus(options: MemoryBusOptions = {}): MemoryBus {
  const channels = new Map<string, Set<Attachment>>();
  const resetCallbacks = new Set<() => void>();
  let received = 0;
  let closed = false;

  const invoke = (channel: string, listener: BusListener, payload: string): void => {
    try {
      listener(payload);
    } catch (err) {
      if (options.logger) options.logger.warn({ err, channel }, 'bus listener threw');
      else queueMicrotask(() => {
        throw err;
      });
    }
  };

  return {
    async publish(channel, payload) {
      if (closed) throw new Error('bus is closed');
      const attached = channels.get(channel);
      if (!attached) return;
      received++;
      // Listeners attached after the publish miss it, as they would with a broker;
      // listeners detached before delivery are skipped.
      const targets = [...attached];
      queueMicrotask(() => {
        for (const attachment of targets) {
          if (attached.has(attachment)) invoke(channel, attachment.listener, payload);
        }
      });
    },

    async subscribe(channel, listener) {
      if (closed) throw new Error('bus is closed');
      let attached = channels.get(channel);
      if (!attached) {
        attached = new Set();
        channels.set(channel, attached);
      }
      const attachment: Attachment = { listener };
      attached.add(attachment);
      const set = attached;
      return () => {
        if (!set.delete(attachment)) return;
        if (set.size === 0 && channels.get(channel) === set) channels.delete(channel);
      };
    },

    onReset(callback) {
      // Nothing to reconnect to, so this never fires; kept for the contract.
      resetCallbacks.add(callback);
      return () => {
        resetCallbacks.delete(callback);
      };
    },

    subscribedChannels: () => [...channels.keys()],
    isHealthy: () => !closed,
    settled: async () => {},
    messagesReceived: () => received,

    async close() {
      closed = true;
      channels.clear();
      resetCallbacks.clear();
    },
  };
}
