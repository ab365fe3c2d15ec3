import type { SentinelTarget } from '../redis/target.js';
import { createMemoryPresenceStore } from './presence-store-memory.js';
import { createRedisPresenceStore } from './presence-store-redis.js';
import type { PresenceStore, PresenceStoreObserver } from './presence-store.js';
import type { SessionStoreKind } from './factory.js';

/** The presence store a deployment asked for (REDIS_URL, REDIS_CLUSTER, PRESENCE_TIMEOUT_SECONDS). */
export function createPresenceStore(options: {
  kind: SessionStoreKind;
  redisUrl?: string | undefined;
  sentinel?: SentinelTarget | undefined;
  commandTimeoutMs?: number | undefined;
  timeoutMs: number;
  observer?: PresenceStoreObserver;
}): PresenceStore {
  const { kind, redisUrl, sentinel, commandTimeoutMs, timeoutMs, observer } = options;
  switch (kind) {
    case 'memory':
      return createMemoryPresenceStore();
    case 'redis':
    case 'redis-cluster': {
      if (!redisUrl) throw new Error(`presence store kind "${kind}" needs redisUrl`);
      const cluster = kind === 'redis-cluster';
      return createRedisPresenceStore({
        url: redisUrl,
        cluster,
        sentinel: cluster ? undefined : sentinel,
        commandTimeoutMs,
        timeoutMs,
        ...(observer ? { observer } : {}),
      });
    }
    default:
      throw new Error(`unknown presence store kind: ${String(kind satisfies never)}`);
  }
}
