import { Cluster, Redis } from 'ioredis';
import { watchLiveness } from '../redis/liveness.js';
import { DEFAULT_COMMAND_TIMEOUT_MS, sentinelOptions, type SentinelTarget } from '../redis/target.js';

/** Where the session stores' connection goes (REDIS_URL, REDIS_CLUSTER, REDIS_SENTINELS, REDIS_COMMAND_TIMEOUT_MS). */
export interface SessionRedisTarget {
  url: string;
  cluster?: boolean | undefined;
  sentinel?: SentinelTarget | undefined;
  commandTimeoutMs?: number | undefined;
}

/** A session store's client and the function that closes it (its liveness pings with it). */
export interface SessionRedis {
  client: Redis | Cluster;
  close(): void;
}

/**
 * One command connection for a session store; commands are auto-pipelined. A command gives
 * up after the command timeout (a ticket or a socket slot over a stalled network is a 503 or
 * a close 1011, never a hung request), and a standalone connection that misses a ping
 * reconnects (redis/liveness.ts).
 */
export function sessionRedis(target: SessionRedisTarget): SessionRedis {
  const commandTimeout = target.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const redisOptions = { enableAutoPipelining: true, maxRetriesPerRequest: 1, lazyConnect: false, connectionName: 'chat-sessions', commandTimeout };
  const client = target.cluster
    ? new Cluster([target.url], { redisOptions })
    : new Redis(target.url, { ...redisOptions, ...sentinelOptions(target.sentinel, commandTimeout) });
  client.on('error', () => {
    // Reconnects on its own; a command issued meanwhile rejects and the caller answers 503.
  });
  const stopLiveness = client instanceof Redis ? watchLiveness(client, { intervalMs: commandTimeout, timeoutMs: commandTimeout }) : () => {};
  return {
    client,
    close() {
      stopLiveness();
      client.disconnect();
    },
  };
}
