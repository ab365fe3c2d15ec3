import { Cluster } from 'ioredis';
import type { Bus, BusLogger } from './bus.js';
import { createListenerRegistry } from './listener-registry.js';
import { createClusterFence, type FenceTarget } from './redis-cluster-fence.js';
import {
  clusterSeeds,
  createPublisher,
  createSubscriber,
  publishOn,
  shutdown,
  startConnection,
  whenReady,
} from './redis-connections.js';
import { createRestorer, withTimeout } from './redis-restore.js';
import { createSubscriberClient } from './redis-subscriber.js';
import type { SentinelTarget } from '../redis/target.js';
import { createBrokerSubscriptions } from './redis-subscriptions.js';

export interface RedisBusOptions {
  /** `redis://` or `rediss://` URL; in cluster mode a seed node, and the source of credentials. */
  url: string;
  /**
   * Redis Cluster with sharded pub/sub (SPUBLISH/SSUBSCRIBE): `true` seeds from `url`,
   * `{ nodes }` from those `host:port` or URL strings.
   */
  cluster?: boolean | { nodes: string[] };
  /** Reconnects, restores and listener errors; without one, listener errors are rethrown. */
  logger?: BusLogger;
  /** Standalone only: follow the primary these Sentinels name. */
  sentinel?: SentinelTarget | undefined;
  /** Longest wait for a reply, and how often each connection is pinged (default 5 s). */
  commandTimeoutMs?: number | undefined;
}

/** The Redis bus plus what startup, tests and metrics need beyond the contract. */
export interface RedisBus extends Bus {
  /** Resolves once both connections have been ready (first connect); rejects if one ends first. */
  ready(): Promise<void>;
  /** Resolves once no broker subscribe/unsubscribe is in flight (e.g. after the last detach). */
  settled(): Promise<void>;
  /** Messages that arrived from the broker, whether or not a listener was still attached. */
  messagesReceived(): number;
}

const SILENT: BusLogger = { warn() {}, info() {} };
/** One step of a restore (resubscribing, the cluster fence) that takes longer has failed. */
const STEP_TIMEOUT_MS = 10_000;
/** A cluster subscriber client that cannot restore for this long is replaced (see `Subscriber.replace`). */
const STUCK_SUBSCRIBER_MS = 15_000;

/**
 * Creates a bus on Redis pub/sub (PUBLISH/SUBSCRIBE), or on Redis Cluster sharded pub/sub
 * (SPUBLISH/SSUBSCRIBE), with one publisher and one subscriber client. Connects at once.
 *
 * The parts: `listeners` (local listeners and delivery), `subscriptions` (the broker side of
 * each channel), `subscriber` (the subscriber client and its events), `restorer` (reconnects and
 * onReset) and, on a cluster, `fence` (whether ioredis' resubscription has landed).
 */
export function createRedisBus(options: RedisBusOptions): RedisBus {
  const log = options.logger ?? SILENT;
  const clustered = options.cluster !== undefined && options.cluster !== false;
  const target = {
    url: options.url,
    seeds: clustered
      ? clusterSeeds(options.url, typeof options.cluster === 'object' ? options.cluster.nodes : undefined)
      : undefined,
    sentinel: clustered ? undefined : options.sentinel,
    commandTimeoutMs: options.commandTimeoutMs,
  };
  const fence = createClusterFence(Math.random().toString(36).slice(2, 10));
  let received = 0;
  let closed = false;
  let publisherReadyOnce = false;
  const isClosed = (): boolean => closed;

  const publisher = createPublisher(target);
  const listeners = createListenerRegistry({ logger: options.logger });

  const subscriber = createSubscriberClient({
    create: () => createSubscriber(target),
    clustered,
    log,
    isClosed,
    commandTimeoutMs: options.commandTimeoutMs,
    on: {
      message(channel, payload) {
        received++;
        if (!listeners.has(channel)) return;
        listeners.dispatch(channel, typeof payload === 'string' ? payload : payload.toString());
      },
      lost: () => restorer.lost(),
      dropped: () => subscriptions.connectionLost(),
      // Everything sent on the old connection was rejected when it dropped, so a command in
      // flight now went out on this one and its outcome is accurate.
      fresh: () => subscriptions.connectionReplaced(),
      recover: () => void restorer.restore(),
    },
  });

  const subscriptions = createBrokerSubscriptions({ link: subscriber, wanted: listeners.has, isClosed });

  const fenceTarget = (): FenceTarget => {
    const client = subscriber.current();
    if (!(client instanceof Cluster)) throw new Error('bus: the fence needs a cluster client');
    return {
      ownerOf: (slot) => client.slots[slot]?.[0],
      async probe(name) {
        subscriber.requireReady();
        const count = Number(await client.ssubscribe(name));
        subscriber.requireReady();
        await client.sunsubscribe(name);
        return count;
      },
    };
  };

  /** One try at a restore: every wanted channel back at the broker, and nothing lost meanwhile. */
  const attemptRestore = async (stale: () => boolean): Promise<boolean> => {
    if (publisher.status !== 'ready' || subscriber.current().status !== 'ready') return false;
    subscriptions.resync();
    await withTimeout(subscriptions.settled(), 'resubscribing', STEP_TIMEOUT_MS);
    if (clustered) {
      await withTimeout(fence.check(fenceTarget(), subscriptions.held()), 'checking sharded subscribers', STEP_TIMEOUT_MS);
    }
    if (closed || stale()) return false;
    const missing = subscriptions.missing();
    if (missing.length > 0) {
      log.warn({ channels: missing.length, err: missing[0]?.lastError }, 'bus: some channels are not resubscribed yet');
      return false;
    }
    return true;
  };

  const restorer = createRestorer({
    attempt: attemptRestore,
    isClosed,
    log,
    clustered,
    channelCount: () => subscriptions.size(),
    stuck: clustered
      ? {
          afterMs: STUCK_SUBSCRIBER_MS,
          replace() {
            subscriber.replace();
            restorer.lost();
            // The new client holds nothing yet; a command still in flight on the old one ends `unknown`.
            subscriptions.connectionReplaced();
          },
        }
      : undefined,
  });

  publisher.on('ready', () => {
    publisherReadyOnce = true;
    void restorer.restore();
  });
  const stopPublisherLiveness = startConnection(publisher, 'publisher', log, options.commandTimeoutMs);
  subscriber.connect();

  const closedError = (): Error => new Error('bus is closed');

  return {
    async publish(channel, payload) {
      if (closed) throw closedError();
      // Before the first connect the offline queue holds publishes (startup order); after it, a
      // publish while disconnected fails at once: the event is in PostgreSQL already and is
      // worthless later, and subscribers repair gaps after onReset.
      if (publisherReadyOnce && publisher.status !== 'ready') {
        throw new Error(`bus: Redis publisher not connected (${publisher.status})`);
      }
      await publishOn(publisher, channel, payload);
    },

    async subscribe(channel, listener) {
      if (closed) throw closedError();
      const attachment = listeners.attach(channel, listener);
      const detach = (): void => {
        if (attachment.detach() && !closed) void subscriptions.reconcile(channel);
      };
      const held = await subscriptions.hold(channel, attachment.isAttached);
      if (closed) throw closedError();
      if (held) return detach;
      detach();
      throw new Error(`bus: subscribing to ${channel} failed`, { cause: subscriptions.lastError(channel) });
    },

    onReset: (callback) => restorer.onReset(callback),
    subscribedChannels: () => subscriptions.held(),

    // Readiness: both clients connected and no restore outstanding. A cluster client only
    // notices a node is gone when it uses a connection to it.
    isHealthy: () =>
      !closed && !restorer.pending() && publisher.status === 'ready' && subscriber.current().status === 'ready',

    ready: () => Promise.all([whenReady(publisher), whenReady(subscriber.current())]).then(() => undefined),
    settled: () => subscriptions.settled(),
    messagesReceived: () => received,

    async close() {
      if (closed) return;
      closed = true;
      restorer.close();
      stopPublisherLiveness();
      subscriber.stop();
      await Promise.all([shutdown(publisher), shutdown(subscriber.current())]);
      listeners.clear();
      subscriptions.clear();
    },
  };
}
