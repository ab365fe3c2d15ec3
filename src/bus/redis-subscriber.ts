import type { BusLogger } from './bus.js';
import { type Connection, startConnection, subscribeOn } from './redis-connections.js';

/** What the subscriber client's events mean to the bus; only the current client's count. */
export interface SubscriberHooks {
  /** A payload arrived (whether or not a listener still wants it). */
  message(channel: string, payload: string | Buffer): void;
  /** Subscriptions were lost (the connection, or in a cluster one sharded subscriber); after the first connect only. */
  lost(): void;
  /** Single node: the connection closed, and the server dropped what it held with it. */
  dropped(): void;
  /** Single node: a new connection came up, holding no subscriptions. */
  fresh(): void;
  /** A sign of recovery: time to try a restore. */
  recover(): void;
}

export interface SubscriberOptions {
  /** Makes a new, unconnected client. */
  create(): Connection;
  clustered: boolean;
  log: BusLogger;
  isClosed(): boolean;
  on: SubscriberHooks;
  /** Liveness ping interval and timeout of a standalone client (redis-connections.ts). */
  commandTimeoutMs?: number | undefined;
}

/** The bus' subscriber client, which may be swapped for a new one (see `replace`). */
export interface Subscriber {
  current(): Connection;
  /** Bumped by `replace`: a command sent on an older client is moot. */
  generation(): number;
  /**
   * Once connected, a command while the subscriber is down fails at once instead of waiting in
   * an offline queue (a cluster client's has no bound): the restore after the reconnect brings
   * every channel in line anyway. Throws then.
   */
  requireReady(): void;
  /** Connects the first client (once its listeners are attached, so no early error goes unlogged). */
  connect(): void;
  /** Stops the liveness pings (the bus closes the connection itself). */
  stop(): void;
  /** SUBSCRIBE/UNSUBSCRIBE (sharded on a cluster) on the current client, after `requireReady`. */
  send(channel: string, want: boolean): Promise<unknown>;
  /**
   * Drops the current client for a new one, which holds nothing yet. ioredis 6.0.0's
   * sharded-subscriber group can wedge for good (a reset waits forever on a subscriber stopped
   * while it was connecting, e.g. when every node restarted at once), so a cluster subscriber
   * client that keeps failing its restore is swapped this way.
   */
  replace(): void;
}

/** Creates the first client and wires its events to `on`; `connect` starts it. */
export function createSubscriberClient(options: SubscriberOptions): Subscriber {
  const { clustered, log, on } = options;
  let client = options.create();
  let generation = 0;
  let readyOnce = false;
  let stopLiveness = (): void => {};

  const onLost = (): void => {
    if (readyOnce) on.lost();
  };

  const attach = (attached: Connection): void => {
    const current = (): boolean => attached === client && !options.isClosed();
    if (clustered) {
      // The sharded subscribers listen for `smessage` themselves, so ioredis has already decoded
      // both strings; `smessageBuffer` would not save a copy.
      attached.on('smessage', (channel: string, payload: string) => on.message(channel, payload));
      // A sharded subscriber was dropped (its node went away, or its slots moved) and its
      // subscriptions with it; ioredis then builds a new one and resubscribes.
      attached.on('-subscriber', () => {
        if (current()) onLost();
      });
      attached.on('subscribersReady', () => {
        if (current()) on.recover();
      });
    } else {
      // Only `messageBuffer` is listened to, so ioredis skips its string conversion and the
      // payload is decoded once, and only when a listener wants it.
      attached.on('messageBuffer', (channel: Buffer, payload: Buffer) => on.message(channel.toString(), payload));
    }
    attached.on('ready', () => {
      if (!current()) return;
      if (!readyOnce) {
        readyOnce = true;
        return;
      }
      log.info({ cluster: clustered }, 'bus: Redis subscriber reconnected');
      // A cluster client keeps its sharded subscribers' state itself (see above).
      if (!clustered) on.fresh();
      on.recover();
    });
    attached.on('close', () => {
      if (!current()) return;
      onLost();
      // For a cluster client `close` is the whole client; ioredis tracks its sharded subscribers.
      if (!clustered) on.dropped();
    });
  };

  const requireReady = (): void => {
    if (readyOnce && client.status !== 'ready') {
      throw new Error(`bus: Redis subscriber not connected (${client.status})`);
    }
  };

  attach(client);

  return {
    current: () => client,
    generation: () => generation,
    requireReady,
    connect: () => {
      stopLiveness = startConnection(client, 'subscriber', log, options.commandTimeoutMs);
    },
    stop: () => stopLiveness(),

    send(channel, want) {
      requireReady();
      return subscribeOn(client, channel, want);
    },

    replace() {
      log.warn({}, 'bus: Redis Cluster subscriber client is not recovering; replacing it');
      const old = client;
      generation++;
      client = options.create();
      old.removeAllListeners();
      old.on('error', () => {});
      old.disconnect();
      attach(client);
      stopLiveness();
      stopLiveness = startConnection(client, 'subscriber', log, options.commandTimeoutMs);
    },
  };
}
