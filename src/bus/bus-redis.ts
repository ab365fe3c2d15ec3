import { Cluster, Redis } from 'ioredis';
import type { ClusterNode, RedisOptions } from 'ioredis';
import type { Bus, BusListener } from './bus.js';
import { KEY_PREFIX } from './channels.js';

/** The slice of a pino logger the bus uses. */
export interface BusLogger {
  warn(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
}

export interface RedisBusOptions {
  /** `redis://` or `rediss://` URL; in cluster mode a seed node, and the source of credentials. */
  url: string;
  /**
   * Redis Cluster with sharded pub/sub (SPUBLISH/SSUBSCRIBE): `true` seeds from `url`,
   * `{ nodes }` from those `host:port` or URL strings.
   */
  cluster?: boolean | { nodes: string[] };
  logger?: BusLogger;
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

type Connection = Redis | Cluster;
type BrokerState = 'off' | 'on' | 'unknown';

interface Attachment {
  readonly listener: BusListener;
}

/**
 * One channel's listeners and broker-side state. At most one broker command per channel is
 * in flight: `reconcile` issues them one at a time until the broker matches the listeners,
 * which is what makes racing subscribe/unsubscribe calls end in the right state.
 */
interface ChannelState {
  readonly listeners: Set<Attachment>;
  broker: BrokerState;
  busy: boolean;
  done: Promise<void>;
  lastError: unknown;
}

const SILENT: BusLogger = { warn() {}, info() {} };
const RETRY_RESTORE_MS = 1_000;
const STEP_TIMEOUT_MS = 10_000;

/** Capped exponential backoff: a restarted Redis is picked up within about two seconds. */
const retryStrategy = (times: number): number =>
  Math.min(50 * 2 ** (times - 1), 2_000) + Math.floor(Math.random() * 100);

/**
 * Options shared by every connection.
 * - `maxRetriesPerRequest: 0`: ioredis rejects whatever is in flight or queued as soon as a
 *   connection drops or a reconnect attempt fails, instead of holding it (the default is 20
 *   attempts, over a minute of backoff) and resending it. A publish is never sent twice (the
 *   bus is at-most-once) and a publish or subscribe during an outage fails within one retry
 *   delay instead of piling up.
 * - The offline queue stays on so commands issued before the first connect (startup) or during
 *   one reconnect attempt are sent when it succeeds; the option above bounds how long.
 * - `lazyConnect`: the bus attaches its listeners first and connects itself, so no early error
 *   goes unlogged; tests can create a bus against a server that is not up yet.
 */
const COMMON: RedisOptions = {
  lazyConnect: true,
  maxRetriesPerRequest: 0,
  enableOfflineQueue: true,
  autoResendUnfulfilledCommands: false,
  retryStrategy,
};

/** Creates a bus on Redis pub/sub, or Redis Cluster sharded pub/sub. Connects at once. */
export function createRedisBus(options: RedisBusOptions): RedisBus {
  const log = options.logger ?? SILENT;
  const clustered = options.cluster !== undefined && options.cluster !== false;
  const instanceId = Math.random().toString(36).slice(2, 10);

  let publisher: Connection;
  let subscriber: Connection;
  if (clustered) {
    const { nodes, redisOptions } = clusterSeeds(options);
    publisher = new Cluster(nodes, {
      lazyConnect: true,
      enableAutoPipelining: true,
      // A command failing with "connection closed" may have run already: retrying it after a
      // failover delay could publish twice. MOVED/ASK/TRYAGAIN retries stay (nothing ran).
      retryDelayOnFailover: 0,
      redisOptions: { ...redisOptions, connectionName: 'chat-bus-pub' },
    });
    subscriber = new Cluster(nodes, {
      lazyConnect: true,
      // ioredis keeps one subscriber connection per master that owns a subscribed slot, routes
      // SSUBSCRIBE/SUNSUBSCRIBE by slot and resubscribes after topology changes or node loss.
      shardedSubscribers: true,
      redisOptions: { ...redisOptions, connectionName: 'chat-bus-sub' },
    });
  } else {
    publisher = new Redis(options.url, { ...COMMON, enableAutoPipelining: true, connectionName: 'chat-bus-pub' });
    subscriber = new Redis(options.url, {
      ...COMMON,
      // The bus resubscribes itself on `ready`, so it knows when every channel is back before
      // calling onReset; ioredis' own resubscription is fire-and-forget.
      autoResubscribe: false,
      connectionName: 'chat-bus-sub',
    });
  }

  const channels = new Map<string, ChannelState>();
  const resetCallbacks = new Set<() => void>();
  const fenceNames = new Map<string, string>();
  let received = 0;
  let closed = false;
  let publisherReadyOnce = false;
  let subscriberReadyOnce = false;
  /** Subscriber connection losses so far: a restore started before the latest one is stale. */
  let losses = 0;
  let resetPending = false;
  let restoring = false;
  let restoreAgain = false;
  let retryTimer: NodeJS.Timeout | undefined;

  const commands = clustered
    ? {
        publish: (channel: string, payload: string) => (publisher as Cluster).spublish(channel, payload),
        subscribe: (channel: string) => (subscriber as Cluster).ssubscribe(channel),
        unsubscribe: (channel: string) => (subscriber as Cluster).sunsubscribe(channel),
      }
    : {
        publish: (channel: string, payload: string) => (publisher as Redis).publish(channel, payload),
        subscribe: (channel: string) => (subscriber as Redis).subscribe(channel),
        unsubscribe: (channel: string) => (subscriber as Redis).unsubscribe(channel),
      };

  // --- delivery -------------------------------------------------------------------------

  const dispatch = (channel: string, payload: string | Buffer): void => {
    received++;
    const state = channels.get(channel);
    if (!state || state.listeners.size === 0) return;
    const text = typeof payload === 'string' ? payload : payload.toString();
    for (const attachment of [...state.listeners]) {
      // A listener detached by an earlier one in this loop must not see the payload.
      if (!state.listeners.has(attachment)) continue;
      try {
        attachment.listener(text);
      } catch (err) {
        log.warn({ err, channel }, 'bus listener threw');
      }
    }
  };

  if (clustered) {
    // The sharded subscribers listen for `smessage` themselves, so ioredis has already decoded
    // both strings; `smessageBuffer` would not save a copy.
    subscriber.on('smessage', (channel: string, payload: string) => dispatch(channel, payload));
  } else {
    // Only `messageBuffer` is listened to, so ioredis skips its string conversion and the
    // payload is decoded once, and only when a listener wants it.
    subscriber.on('messageBuffer', (channel: Buffer, payload: Buffer) => dispatch(channel.toString(), payload));
  }

  // --- reference-counted subscriptions -------------------------------------------------

  const stateOf = (channel: string): ChannelState => {
    let state = channels.get(channel);
    if (!state) {
      state = { listeners: new Set(), broker: 'off', busy: false, done: Promise.resolve(), lastError: undefined };
      channels.set(channel, state);
    }
    return state;
  };

  const inSync = (state: ChannelState): boolean => state.broker === (state.listeners.size > 0 ? 'on' : 'off');

  /** Starts the channel's reconcile loop unless it runs already; resolves when it stops. */
  const kick = (channel: string, state: ChannelState): Promise<void> => {
    if (!state.busy) {
      // Set before the loop starts because the loop may finish synchronously.
      state.busy = true;
      state.done = reconcile(channel, state);
    }
    return state.done;
  };

  const reconcile = async (channel: string, state: ChannelState): Promise<void> => {
    for (;;) {
      // `busy` is cleared in the same tick as the decision to stop, so a change made after it
      // starts a new loop instead of waiting on one that will not look again.
      if (closed || inSync(state)) break;
      const want = state.listeners.size > 0;
      try {
        await (want ? commands.subscribe(channel) : commands.unsubscribe(channel));
        state.broker = want ? 'on' : 'off';
        state.lastError = undefined;
      } catch (err) {
        // Maybe applied, maybe not: the next restore settles it.
        state.broker = 'unknown';
        state.lastError = err;
        break;
      }
    }
    state.busy = false;
    if (state.listeners.size === 0 && state.broker === 'off' && channels.get(channel) === state) {
      channels.delete(channel);
    }
  };

  const settled = async (): Promise<void> => {
    for (;;) {
      const running = [...channels.values()].filter((state) => state.busy).map((state) => state.done);
      if (running.length === 0) return;
      await Promise.all(running);
    }
  };

  // --- reconnects -----------------------------------------------------------------------

  const onSubscriberLost = (): void => {
    if (!subscriberReadyOnce || closed) return;
    losses++;
    if (!resetPending) log.warn({ cluster: clustered }, 'bus: Redis subscriber connection lost');
    resetPending = true;
  };

  const scheduleRestore = (): void => {
    if (retryTimer || closed) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void restore();
    }, RETRY_RESTORE_MS);
    retryTimer.unref();
  };

  /**
   * Brings every channel with listeners back, proves the broker has applied it, then calls the
   * onReset callbacks. Triggered by each sign of recovery; idempotent, and retried on a timer
   * while it cannot complete.
   */
  const restore = async (): Promise<void> => {
    if (!resetPending || closed) return;
    if (restoring) {
      restoreAgain = true;
      return;
    }
    restoring = true;
    const epoch = losses;
    let ok = false;
    try {
      if (publisher.status !== 'ready' || subscriber.status !== 'ready') { console.log('DBG status', publisher.status, subscriber.status); return; }
      for (const [channel, state] of channels) {
        if (!state.busy && !inSync(state)) void kick(channel, state);
      }
      await withTimeout(settled(), 'resubscribing');
      if (clustered) await withTimeout(fence(), 'checking sharded subscribers');
      if (closed || epoch !== losses) return;
      const missing = [...channels].filter(([, state]) => state.listeners.size > 0 && state.broker !== 'on');
      if (missing.length > 0) {
        log.warn(
          { channels: missing.length, err: missing[0]?.[1].lastError },
          'bus: some channels could not be resubscribed yet',
        );
        return;
      }
      ok = true;
    } catch (err) {
      log.warn({ err }, 'bus: restoring subscriptions failed; retrying');
    } finally {
      restoring = false;
    }
    if (ok) {
      resetPending = false;
      log.info({ channels: channels.size }, 'bus: Redis subscriptions restored');
      for (const callback of [...resetCallbacks]) {
        try {
          callback();
        } catch (err) {
          log.warn({ err }, 'bus onReset callback threw');
        }
      }
    } else if (restoreAgain) {
      restoreAgain = false;
      void restore();
    } else {
      scheduleRestore();
    }
  };

  /**
   * ioredis resubscribes sharded channels itself but does not say when the server has applied
   * it. Commands on one connection are answered in order, so a SSUBSCRIBE + SUNSUBSCRIBE of a
   * throwaway channel on each subscriber connection in use proves every SSUBSCRIBE sent before
   * it has been applied. Two steps, because a first command may overtake a resubscription
   * queued behind the connection's `ready` event; the second is sent after a round trip.
   */
  const fence = async (): Promise<void> => {
    const cluster = subscriber as Cluster;
    const owners = new Set<string>();
    for (const [channel, state] of channels) {
      if (state.listeners.size === 0) continue;
      const owner = cluster.slots[keySlot(channel)]?.[0];
      if (owner === undefined) throw new Error(`no node serves the slot of ${channel}`);
      owners.add(owner);
    }
    await Promise.all(
      [...owners].map(async (owner) => {
        const name = fenceChannel(cluster, owner);
        await cluster.ssubscribe(name);
        await cluster.sunsubscribe(name);
      }),
    );
  };

  /** A channel name of this instance's own whose slot `owner` serves. */
  const fenceChannel = (cluster: Cluster, owner: string): string => {
    const cached = fenceNames.get(owner);
    if (cached !== undefined && cluster.slots[keySlot(cached)]?.[0] === owner) return cached;
    for (let i = 0; i < 100_000; i++) {
      const name = `${KEY_PREFIX}bus-fence:{${instanceId}:${i}}`;
      if (cluster.slots[keySlot(name)]?.[0] === owner) {
        fenceNames.set(owner, name);
        return name;
      }
    }
    throw new Error(`no fence channel found for ${owner}`);
  };

  subscriber.on('ready', () => {
    if (!subscriberReadyOnce) {
      subscriberReadyOnce = true;
      return;
    }
    log.info({ cluster: clustered }, 'bus: Redis subscriber reconnected');
    if (!clustered) {
      // A new connection holds no subscriptions. Channels with a command in flight are left
      // alone: everything sent on the old connection was rejected when it dropped, so what is
      // in flight now was sent on this one and its outcome is accurate.
      for (const state of channels.values()) if (!state.busy) state.broker = 'off';
    }
    void restore();
  });
  subscriber.on('close', () => {
    onSubscriberLost();
    // The server dropped this connection's subscriptions with it. (In cluster mode `close` is
    // the whole cluster client; sharded subscribers are tracked by ioredis, see below.)
    if (!clustered) for (const state of channels.values()) if (state.broker === 'on') state.broker = 'unknown';
  });
  if (clustered) {
    // A sharded subscriber was dropped (its node went away, or its slots moved) and with it
    // its subscriptions; ioredis then builds new ones and emits `subscribersReady`.
    subscriber.on('-subscriber', onSubscriberLost);
    subscriber.on('subscribersReady', () => void restore());
  }
  publisher.on('ready', () => {
    publisherReadyOnce = true;
    void restore();
  });

  for (const [role, connection] of [['publisher', publisher], ['subscriber', subscriber]] as const) {
    connection.on('error', (err: unknown) => log.warn({ err, role }, 'bus: Redis error'));
    // Cluster-only: errors of single nodes, while the cluster as a whole carries on.
    connection.on('node error', (err: unknown, node: unknown) => log.warn({ err, role, node }, 'bus: Redis node error'));
    connection.connect().catch((err: unknown) => log.warn({ err, role }, 'bus: Redis connect failed; retrying'));
  }

  const closedError = (): Error => new Error('bus is closed');

  return {
    async publish(channel, payload) {
      if (closed) throw closedError();
      // Before the first connect the offline queue holds publishes (startup order); after it,
      // a publish while disconnected fails at once: the event is stored in PostgreSQL already
      // and is worthless later, and subscribers repair gaps after onReset.
      if (publisherReadyOnce && publisher.status !== 'ready') {
        throw new Error(`bus: Redis publisher not connected (${publisher.status})`);
      }
      await commands.publish(channel, payload);
    },

    async subscribe(channel, listener) {
      if (closed) throw closedError();
      const state = stateOf(channel);
      const attachment: Attachment = { listener };
      state.listeners.add(attachment);
      const detach = (): void => {
        if (state.listeners.delete(attachment) && !closed) void kick(channel, state);
      };
      for (;;) {
        await kick(channel, state);
        if (closed) throw closedError();
        if (state.broker === 'on' && state.listeners.has(attachment)) return detach;
        if (!state.busy) {
          detach();
          throw new Error(`bus: subscribing to ${channel} failed`, { cause: state.lastError });
        }
      }
    },

    onReset(callback) {
      resetCallbacks.add(callback);
      return () => {
        resetCallbacks.delete(callback);
      };
    },

    subscribedChannels: () => [...channels].filter(([, state]) => state.broker === 'on').map(([channel]) => channel),

    isHealthy: () =>
      !closed && !resetPending && publisher.status === 'ready' && subscriber.status === 'ready',

    ready: () => Promise.all([whenReady(publisher), whenReady(subscriber)]).then(() => undefined),
    settled,
    messagesReceived: () => received,

    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(retryTimer);
      await Promise.all([shutdown(publisher), shutdown(subscriber)]);
      channels.clear();
      resetCallbacks.clear();
    },
  };
}

function whenReady(connection: Connection): Promise<void> {
  if (connection.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onReady = (): void => {
      connection.off('end', onEnd);
      resolve();
    };
    const onEnd = (): void => {
      connection.off('ready', onReady);
      reject(new Error('bus: Redis connection ended before it was ready'));
    };
    connection.once('ready', onReady);
    connection.once('end', onEnd);
  });
}

/** QUIT when connected, so replies in flight arrive; otherwise stop reconnecting at once. */
async function shutdown(connection: Connection): Promise<void> {
  if (connection.status === 'end') return;
  if (connection.status === 'ready') {
    try {
      await connection.quit();
      return;
    } catch {
      // Fall through: dropping the connection is all that is left to do.
    }
  }
  connection.disconnect();
}

async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`bus: ${what} timed out`)), STEP_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Seed nodes plus the per-node options (credentials, TLS) taken from the URL. */
function clusterSeeds(options: RedisBusOptions): { nodes: ClusterNode[]; redisOptions: RedisOptions } {
  const url = new URL(options.url);
  const seeds = typeof options.cluster === 'object' ? options.cluster.nodes : [options.url];
  const nodes = seeds.map((seed) => {
    const parsed = new URL(seed.includes('://') ? seed : `redis://${seed}`);
    return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || 6379) };
  });
  const redisOptions: RedisOptions = { ...COMMON };
  if (url.username) redisOptions.username = decodeURIComponent(url.username);
  if (url.password) redisOptions.password = decodeURIComponent(url.password);
  if (url.protocol === 'rediss:') redisOptions.tls = {};
  return { nodes, redisOptions };
}

/** Redis Cluster's key slot: CRC16/XMODEM of the key, or of its `{hash tag}`, mod 16384. */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc & 0x3fff;
}
