import { Cluster, Redis } from 'ioredis';
import type { ClusterNode, RedisOptions } from 'ioredis';
import type { BusLogger } from './bus.js';

/** A bus client: one Redis connection, or a cluster client with its per-node connections. */
export type Connection = Redis | Cluster;

/** Where the clients connect; `seeds` only for Redis Cluster. */
export interface ConnectionTarget {
  /** `redis://` or `rediss://` URL; in cluster mode a seed node, and the source of credentials. */
  url: string;
  seeds?: ClusterSeeds | undefined;
}

export interface ClusterSeeds {
  nodes: ClusterNode[];
  /** Per-node options: the common ones plus credentials and TLS taken from the URL. */
  redisOptions: RedisOptions;
}

/** Capped exponential backoff: a restarted Redis is picked up within about two seconds. */
export const retryStrategy = (times: number): number =>
  Math.min(50 * 2 ** (times - 1), 2_000) + Math.floor(Math.random() * 100);

/**
 * Options for every connection.
 * - `maxRetriesPerRequest: 0`: ioredis rejects whatever is in flight or queued as soon as a
 *   connection drops or a reconnect attempt fails, instead of keeping it through 20 attempts
 *   (over a minute of backoff) and resending it: a publish is never sent twice (the bus is
 *   at-most-once), and nothing piles up while Redis is down.
 * - The offline queue stays on for the first connect (startup order); afterwards the bus
 *   refuses commands itself while a connection is down (see `publish` and `requireReady`).
 * - `commandTimeout`: a connection that is silently gone (no FIN) would otherwise hold commands
 *   until TCP gives up. A timed-out command is rejected, never resent.
 * - `lazyConnect`: the bus attaches its listeners before it connects, so no early error goes
 *   unlogged, and a bus can be created before its server is up (tests).
 */
export const COMMON: RedisOptions = {
  lazyConnect: true,
  maxRetriesPerRequest: 0,
  enableOfflineQueue: true,
  autoResendUnfulfilledCommands: false,
  commandTimeout: 5_000,
  retryStrategy,
};

/** Seed nodes (`host:port` or URLs; default the URL alone) plus per-node options from the URL. */
export function clusterSeeds(url: string, seeds: string[] = [url]): ClusterSeeds {
  const parsedUrl = new URL(url);
  const nodes = seeds.map((seed) => {
    const parsed = new URL(seed.includes('://') ? seed : `redis://${seed}`);
    return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || 6379) };
  });
  const redisOptions: RedisOptions = { ...COMMON };
  if (parsedUrl.username) redisOptions.username = decodeURIComponent(parsedUrl.username);
  if (parsedUrl.password) redisOptions.password = decodeURIComponent(parsedUrl.password);
  if (parsedUrl.protocol === 'rediss:') redisOptions.tls = {};
  return { nodes, redisOptions };
}

export function createPublisher({ url, seeds }: ConnectionTarget): Connection {
  return seeds
    ? new Cluster(seeds.nodes, {
        lazyConnect: true,
        enableAutoPipelining: true,
        // A command that met a closed connection may have run: retrying it after a failover
        // delay could publish twice. MOVED/ASK/TRYAGAIN retries stay (nothing ran).
        retryDelayOnFailover: 0,
        redisOptions: { ...seeds.redisOptions, connectionName: 'chat-bus-pub' },
      })
    : new Redis(url, { ...COMMON, enableAutoPipelining: true, connectionName: 'chat-bus-pub' });
}

export function createSubscriber({ url, seeds }: ConnectionTarget): Connection {
  return seeds
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
    : new Redis(url, {
        ...COMMON,
        // The bus resubscribes itself on `ready`, so it knows when every channel is back before
        // it calls onReset; ioredis' own resubscription is fire-and-forget.
        autoResubscribe: false,
        connectionName: 'chat-bus-sub',
      });
}

/** PUBLISH, or SPUBLISH on a cluster. */
export const publishOn = (client: Connection, channel: string, payload: string): Promise<unknown> =>
  client instanceof Cluster ? client.spublish(channel, payload) : client.publish(channel, payload);

/** SUBSCRIBE/UNSUBSCRIBE, or their sharded forms on a cluster. */
export const subscribeOn = (client: Connection, channel: string, want: boolean): Promise<unknown> => {
  if (client instanceof Cluster) return want ? client.ssubscribe(channel) : client.sunsubscribe(channel);
  return want ? client.subscribe(channel) : client.unsubscribe(channel);
};

/** Logs the client's errors and connects it. */
export function startConnection(client: Connection, role: string, log: BusLogger): void {
  client.on('error', (err: unknown) => log.warn({ err, role }, 'bus: Redis error'));
  // Cluster clients: a single node failed while the cluster as a whole carries on.
  client.on('node error', (err: unknown, node: unknown) => log.warn({ err, role, node }, 'bus: Redis node error'));
  client.connect().catch((err: unknown) => log.warn({ err, role }, 'bus: Redis connect failed; retrying'));
}

/** Resolves once the client is ready; rejects if it ends first. */
export function whenReady(connection: Connection): Promise<void> {
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
export async function shutdown(connection: Connection): Promise<void> {
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
