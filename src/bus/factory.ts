import type { Bus, BusKind } from './bus.js';
import { createMemoryBus } from './bus-memory.js';
import { type BusLogger, createRedisBus } from './bus-redis.js';

/** What `createBus` needs; normally taken from the config (REDIS_URL, REDIS_CLUSTER). */
export interface CreateBusOptions {
  kind: BusKind;
  /** Required for `redis`; for `redis-cluster` a seed node and the credentials. */
  redisUrl?: string;
  /** `host:port` seed nodes for `redis-cluster`; default: `redisUrl` alone. */
  clusterNodes?: string[];
  logger?: BusLogger;
}

/** Builds the bus a deployment asked for. Redis buses start connecting at once. */
export function createBus(options: CreateBusOptions): Bus {
  const { kind, redisUrl, clusterNodes, logger } = options;
  switch (kind) {
    case 'memory':
      return createMemoryBus({ logger });
    case 'redis':
      if (!redisUrl) throw new Error('bus kind "redis" needs redisUrl');
      return createRedisBus({ url: redisUrl, logger });
    case 'redis-cluster': {
      const url = redisUrl ?? clusterNodes?.[0];
      if (!url) throw new Error('bus kind "redis-cluster" needs redisUrl or clusterNodes');
      return createRedisBus({
        url,
        cluster: clusterNodes?.length ? { nodes: clusterNodes } : true,
        logger,
      });
    }
    default:
      throw new Error(`unknown bus kind: ${String(kind satisfies never)}`);
  }
}
