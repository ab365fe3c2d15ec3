import { Cluster, Redis } from 'ioredis';

/** One command connection for the session stores; commands are auto-pipelined. */
export function sessionRedis(url: string, cluster: boolean): Redis | Cluster {
  const redisOptions = { enableAutoPipelining: true, maxRetriesPerRequest: 1, lazyConnect: false, connectionName: 'chat-sessions' };
  const client = cluster ? new Cluster([url], { redisOptions }) : new Redis(url, redisOptions);
  client.on('error', () => {
    // Reconnects on its own; a command issued meanwhile rejects and the caller answers 503.
  });
  return client;
}
