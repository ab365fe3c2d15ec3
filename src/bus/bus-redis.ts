import { Cluster, Redis } from 'ioredis';
import type { ClusterNode, RedisOptions } from 'ioredis';
import type { Bus, BusListener } from './bus.js';
import { KEY_PREFIX } from '../redis/names.js';

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
  /** Reconnects, restores and listener errors; without one, listener errors are rethrown. */
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
  /** `unknown`: a command failed, or its connection went away; the next restore settles it. */
  broker: 'off' | 'on' | 'unknown';
  busy: boolean;
  done: Promise<void>;
  lastError: unknown;
}

const SILENT: BusLogger = { warn() {}, info() {} };
const RETRY_RESTORE_MS = 1_000;
const STEP_TIMEOUT_MS = 10_000;
/** A cluster subscriber client that cannot restore for this long is replaced (see below). */
const STUCK_SUBSCRIBER_MS = 15_000;

/** Capped exponential backoff: a restarted Redis is picked up within about two seconds. */
const retryStrategy = (times: number): number =>
  Math.min(50 * 2 ** (times - 1), 2_000) + Math.floor(Math.random() * 100);

/**
 * Options for every connection.
 * - `maxRetriesPerRequest: 0`: ioredis rejects whatever is in flight or queued as soon as a
 *   connection drops or a reconnect attempt fails, instead of keeping it through 20 attempts
 *   (over a minute of backoff) and resending it: a publish is never sent twice (the bus is
 *   at-most-once), and nothing piles up while Redis is down.
 * - The offline queue stays on for the first connect (startup order); afterwards the bus
 *   refuses commands itself while a connection is down (see `publish` and `requireSubscriber`).
 * - `commandTimeout`: a connection that is silently gone (no FIN) would otherwise hold commands
 *   until TCP gives up. A timed-out command is rejected, never resent.
 * - `lazyConnect`: the bus attaches its listeners before it connects, so no early error goes
 *   unlogged, and a bus can be created before its server is up (tests).
 */
const COMMON: RedisOptions = {
  lazyConnect: true,
  maxRetriesPerRequest: 0,
  enableOfflineQueue: true,
  autoResendUnfulfilledCommands: false,
  commandTimeout: 5_000,
  retryStrategy,
};

/**
 * Creates a bus on Redis pub/sub (PUBLISH/SUBSCRIBE), or on Redis Cluster sharded pub/sub
 * (SPUBLISH/SSUBSCRIBE), with one publisher and one subscriber client. Connects at once.
 */
export function createRedisBus(options: RedisBusOptions): RedisBus {
  const log = options.logger ?? SILENT;
  const clustered = options.cluster !== undefined && options.cluster !== false;
  const seeds = clustered ? clusterSeeds(options) : undefined;
  const instanceId = Math.random().toString(36).slice(2, 10);

  const channels = new Map<string, ChannelState>();
  const resetCallbacks = new Set<() => void>();
  const fenceNames = new Map<string, string>();
  let received = 0;
  let closed = false;
  let publisherReadyOnce = false;
  let subscriberReadyOnce = false;
  /** Subscriber connection losses so far: a restore started before the latest one is stale. */
  let losses = 0;
  /** Bumped when the subscriber client is replaced; a command sent on an older one is moot. */
  let generation = 0;
  let resetPending = false;
  let restoring = false;
  let restoreAgain = false;
  let failingSince: number | undefined;
  let retryTimer: NodeJS.Timeout | undefined;

  const reportListenerError = (err: unknown, channel: string): void => {
    if (options.logger) options.logger.warn({ err, channel }, 'bus listener threw');
    // Like an EventEmitter would, but only after the other listeners have had the payload.
    else queueMicrotask(() => {
      throw err;
    });
  };

  // --- clients --------------------------------------------------------------------------

  const publisher: Connection = seeds
    ? new Cluster(seeds.nodes, {
        lazyConnect: true,
        enableAutoPipelining: true,
        // A command that met a closed connection may have run: retrying it after a failover
        // delay could publish twice. MOVED/ASK/TRYAGAIN retries stay (nothing ran).
        retryDelayOnFailover: 0,
        redisOptions: { ...seeds.redisOptions, connectionName: 'chat-bus-pub' },
      })
    : new Redis(options.url, { ...COMMON, enableAutoPipelining: true, connectionName: 'chat-bus-pub' });

  const createSubscriber = (): Connection =>
    seeds
      ? new Cluster(seeds.nodes, {
          lazyConnect: true,
          // ioredis keeps one connection per master owning a subscribed slot, routes
          // SSUBSCRIBE/SUNSUBSCRIBE by slot, and resubscribes after node loss or slot moves.
          shardedSubscribers: true,
          // A retried command could wait in the cluster's offline queue, which has no bound.
          retryDelayOnFailover: 0,
          // Documented as 5 s but off unless set. ioredis rebuilds a missing sharded subscriber
          // only on a slots refresh.
          slotsRefreshInterval: 5_000,
          redisOptions: { ...seeds.redisOptions, connectionName: 'chat-bus-sub' },
        })
      : new Redis(options.url, {
          ...COMMON,
          // The bus resubscribes itself on `ready`, so it knows when every channel is back before
          // it calls onReset; ioredis' own resubscription is fire-and-forget.
          autoResubscribe: false,
          connectionName: 'chat-bus-sub',
        });

  let subscriber = createSubscriber();

  const commands = {
    publish: (channel: string, payload: string): Promise<unknown> =>
      publisher instanceof Cluster ? publisher.spublish(channel, payload) : publisher.publish(channel, payload),
    subscribe: (channel: string): Promise<unknown> =>
      subscriber instanceof Cluster ? subscriber.ssubscribe(channel) : subscriber.subscribe(channel),
    unsubscribe: (channel: string): Promise<unknown> =>
      subscriber instanceof Cluster ? subscriber.sunsubscribe(channel) : subscriber.unsubscribe(channel),
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
        reportListenerError(err, channel);
      }
    }
  };

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

  /** Forgets a channel nobody listens to and the broker does not hold. */
  const prune = (channel: string, state: ChannelState): void => {
    if (!state.busy && state.listeners.size === 0 && state.broker === 'off' && channels.get(channel) === state) {
      channels.delete(channel);
    }
  };

  /**
   * Once connected, a command while the subscriber is down fails at once instead of waiting in
   * an offline queue (a cluster client's has no bound): the restore after the reconnect brings
   * every channel in line anyway.
   */
  const requireSubscriber = (): void => {
    if (subscriberReadyOnce && subscriber.status !== 'ready') {
      throw new Error(`bus: Redis subscriber not connected (${subscriber.status})`);
    }
  };

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
    // `busy` is cleared in the same tick as the decision to stop, so a change made after that
    // starts a new loop instead of waiting on one that will not look again.
    while (!closed && !inSync(state)) {
      const want = state.listeners.size > 0;
      const sentOn = generation;
      try {
        requireSubscriber();
        await (want ? commands.subscribe(channel) : commands.unsubscribe(channel));
        state.broker = sentOn !== generation ? 'unknown' : want ? 'on' : 'off';
        state.lastError = undefined;
      } catch (err) {
        state.broker = 'unknown';
        state.lastError = err;
        break;
      }
    }
    state.busy = false;
    prune(channel, state);
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
   * Brings every channel with listeners back, checks the broker has applied it, then calls the
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
    restoreAgain = false;
    let ok = false;
    try {
      ok = await attemptRestore();
    } catch (err) {
      log.warn({ err }, 'bus: restoring subscriptions failed; retrying');
    } finally {
      restoring = false;
    }
    if (closed) return;
    if (ok) {
      resetPending = false;
      failingSince = undefined;
      log.info({ channels: channels.size }, 'bus: Redis subscriptions restored');
      for (const callback of [...resetCallbacks]) {
        try {
          callback();
        } catch (err) {
          log.warn({ err }, 'bus onReset callback threw');
        }
      }
      return;
    }
    failingSince ??= Date.now();
    if (clustered && Date.now() - failingSince > STUCK_SUBSCRIBER_MS) {
      failingSince = Date.now();
      replaceSubscriber();
    }
    if (restoreAgain) void restore();
    else scheduleRestore();
  };

  /** One try; false when something is not back yet, or was lost again meanwhile. */
  const attemptRestore = async (): Promise<boolean> => {
    const epoch = losses;
    if (publisher.status !== 'ready' || subscriber.status !== 'ready') return false;
    for (const [channel, state] of channels) {
      if (!state.busy && !inSync(state)) void kick(channel, state);
    }
    await withTimeout(settled(), 'resubscribing');
    if (clustered) await withTimeout(fence(), 'checking sharded subscribers');
    if (closed || epoch !== losses) return false;
    const missing = [...channels.values()].filter((state) => state.listeners.size > 0 && state.broker !== 'on');
    if (missing.length > 0) {
      log.warn({ channels: missing.length, err: missing[0]?.lastError }, 'bus: some channels are not resubscribed yet');
      return false;
    }
    return true;
  };

  /**
   * ioredis resubscribes sharded channels itself, fire-and-forget, at a moment it does not
   * report reliably. So ask each subscriber connection in use: a SSUBSCRIBE of a throwaway
   * channel there is answered after everything sent before it, with the number of shard
   * channels the connection holds. Fewer than ours means the resubscription has not reached
   * the server yet, and the restore is tried again later.
   */
  const fence = async (): Promise<void> => {
    const cluster = subscriber as Cluster;
    const expected = new Map<string, number>();
    for (const [channel, state] of channels) {
      if (state.broker !== 'on') continue;
      const owner = cluster.slots[keySlot(channel)]?.[0];
      if (owner === undefined) throw new Error(`no node serves the slot of ${channel}`);
      expected.set(owner, (expected.get(owner) ?? 0) + 1);
    }
    await Promise.all(
      [...expected].map(async ([owner, ours]) => {
        const name = fenceChannel(cluster, owner);
        requireSubscriber();
        const held = Number(await cluster.ssubscribe(name));
        requireSubscriber();
        await cluster.sunsubscribe(name);
        // At least: a channel whose SUNSUBSCRIBE failed may still be held; it is not one of ours.
        if (held < ours + 1) throw new Error(`subscriber on ${owner} holds ${held - 1} of our ${ours} channels`);
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

  /**
   * ioredis 6.0.0's sharded-subscriber group can wedge for good (a reset waits forever on a
   * subscriber stopped while it was connecting, e.g. when every node restarted at once), so a
   * cluster subscriber client that keeps failing its restore is swapped for a new one.
   */
  const replaceSubscriber = (): void => {
    log.warn({}, 'bus: Redis Cluster subscriber client is not recovering; replacing it');
    const old = subscriber;
    generation++;
    losses++;
    resetPending = true;
    subscriber = createSubscriber();
    // The new client holds nothing yet; a command still in flight on the old one ends `unknown`.
    for (const [channel, state] of channels) {
      if (state.busy) continue;
      state.broker = 'off';
      prune(channel, state);
    }
    old.removeAllListeners();
    old.on('error', () => {});
    old.disconnect();
    attachSubscriber(subscriber);
  };

  const attachSubscriber = (client: Connection): void => {
    const current = (): boolean => client === subscriber && !closed;
    if (clustered) {
      // The sharded subscribers listen for `smessage` themselves, so ioredis has already decoded
      // both strings; `smessageBuffer` would not save a copy.
      client.on('smessage', (channel: string, payload: string) => dispatch(channel, payload));
      // A sharded subscriber was dropped (its node went away, or its slots moved) and its
      // subscriptions with it; ioredis then builds a new one and resubscribes.
      client.on('-subscriber', () => {
        if (current()) onSubscriberLost();
      });
      client.on('subscribersReady', () => {
        if (current()) void restore();
      });
    } else {
      // Only `messageBuffer` is listened to, so ioredis skips its string conversion and the
      // payload is decoded once, and only when a listener wants it.
      client.on('messageBuffer', (channel: Buffer, payload: Buffer) => dispatch(channel.toString(), payload));
    }
    client.on('ready', () => {
      if (!current()) return;
      if (!subscriberReadyOnce) {
        subscriberReadyOnce = true;
        return;
      }
      log.info({ cluster: clustered }, 'bus: Redis subscriber reconnected');
      if (!clustered) {
        // A new connection holds no subscriptions. Channels with a command in flight are left
        // alone: everything sent on the old connection was rejected when it dropped, so what is
        // in flight now was sent on this one and its outcome is accurate.
        for (const [channel, state] of channels) {
          if (state.busy) continue;
          state.broker = 'off';
          prune(channel, state);
        }
      }
      void restore();
    });
    client.on('close', () => {
      if (!current()) return;
      onSubscriberLost();
      // The server dropped this connection's subscriptions with it. (For a cluster client,
      // `close` is the whole client; ioredis tracks its sharded subscribers, see above.)
      if (!clustered) for (const state of channels.values()) if (state.broker === 'on') state.broker = 'unknown';
    });
    start(client, 'subscriber');
  };

  /** Logs the client's errors and connects it. */
  const start = (client: Connection, role: string): void => {
    client.on('error', (err: unknown) => log.warn({ err, role }, 'bus: Redis error'));
    // Cluster clients: a single node failed while the cluster as a whole carries on.
    client.on('node error', (err: unknown, node: unknown) => log.warn({ err, role, node }, 'bus: Redis node error'));
    client.connect().catch((err: unknown) => log.warn({ err, role }, 'bus: Redis connect failed; retrying'));
  };

  publisher.on('ready', () => {
    publisherReadyOnce = true;
    void restore();
  });
  start(publisher, 'publisher');
  attachSubscriber(subscriber);

  // --- the Bus --------------------------------------------------------------------------

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

    // Readiness: both clients connected and no restore outstanding. A cluster client only
    // notices a node is gone when it uses a connection to it.
    isHealthy: () => !closed && !resetPending && publisher.status === 'ready' && subscriber.status === 'ready',

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
