import { Cluster, Redis } from 'ioredis';
import type { ClusterNode, RedisOptions } from 'ioredis';
import { watchLiveness } from '../redis/liveness.js';
import { DEFAULT_COMMAND_TIMEOUT_MS, sentinelOptions, type SentinelTarget } from '../redis/target.js';
import type { BusLogger } from './bus.js';

/** A bus client: one Redis connection, or a cluster client with its per-node connections. */
export type Connection = Redis | Cluster;

/** Where the clients connect; `seeds` only for Redis Cluster. */
export interface ConnectionTarget {
  /** `redis://` or `rediss://` URL; in cluster mode a seed node, and the source of credentials. */
  url: string;
  seeds?: ClusterSeeds | undefined;
  /** Standalone only: follow the primary these Sentinels name (the URL's host is ignored). */
  sentinel?: SentinelTarget | undefined;
  /** Longest wait for a reply, and the liveness ping interval (default 5 s). */
  commandTimeoutMs?: number | undefined;
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
  commandTimeout: DEFAULT_COMMAND_TIMEOUT_MS,
  retryStrategy,
};

/** `COMMON` with the target's command timeout and, for Sentinel, where to ask for the primary. */
function standaloneOptions(target: ConnectionTarget): RedisOptions {
  const commandTimeout = target.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  return { ...COMMON, commandTimeout, ...sentinelOptions(target.sentinel, commandTimeout) };
}

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

export function createPublisher(target: ConnectionTarget): Connection {
  const { url, seeds } = target;
  return seeds
    ? new Cluster(seeds.nodes, {
        lazyConnect: true,
        enableAutoPipelining: true,
        // A command that met a closed connection may have run: retrying it after a failover
        // delay could publish twice. MOVED/ASK/TRYAGAIN retries stay (nothing ran).
        retryDelayOnFailover: 0,
        redisOptions: { ...seeds.redisOptions, connectionName: 'chat-bus-pub' },
      })
    : new Redis(url, { ...standaloneOptions(target), enableAutoPipelining: true, connectionName: 'chat-bus-pub' });
}

export function createSubscriber(target: ConnectionTarget): Connection {
  const { url, seeds } = target;
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
        ...standaloneOptions(target),
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

/**
 * Logs the client's errors and connects it. A standalone client is also pinged every command
 * timeout (redis/liveness.ts): a stalled connection is dropped and reconnects, which readiness
 * sees and after which the bus restores and resyncs. A cluster client spreads over per-node
 * connections ioredis manages; it relies on its command timeout and slot refreshes instead.
 * Returns a function that stops the pinging.
 */
export function startConnection(client: Connection, role: string, log: BusLogger, commandTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS): () => void {
  client.on('error', (err: unknown) => log.warn({ err, role }, 'bus: Redis error'));
  // Cluster clients: a single node failed while the cluster as a whole carries on.
  client.on('node error', (err: unknown, node: unknown) => log.warn({ err, role, node }, 'bus: Redis node error'));
  client.connect().catch((err: unknown) => log.warn({ err, role }, 'bus: Redis connect failed; retrying'));
  if (client instanceof Cluster) return () => {};
  return watchLiveness(client, {
    intervalMs: commandTimeoutMs,
    timeoutMs: commandTimeoutMs,
    onDead: () => log.warn({ role, timeoutMs: commandTimeoutMs }, 'bus: Redis did not answer a ping; reconnecting'),
  });
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
