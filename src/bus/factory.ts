import type { SentinelTarget } from '../redis/target.js';
import type { Bus, BusKind, BusLogger } from './bus.js';
import { createMemoryBus } from './bus-memory.js';
import { createRedisBus } from './bus-redis.js';

/** What `createBus` needs; normally taken from the config (REDIS_URL, REDIS_CLUSTER). */
export interface CreateBusOptions {
  kind: BusKind;
  /** Required for `redis`; for `redis-cluster` a seed node and the credentials. */
  redisUrl?: string;
  /** `redis` only: follow the primary these Sentinels name (REDIS_SENTINELS, REDIS_SENTINEL_NAME). */
  sentinel?: SentinelTarget | undefined;
  /** REDIS_COMMAND_TIMEOUT_MS. */
  commandTimeoutMs?: number | undefined;
  logger?: BusLogger;
}

/** Builds the bus a deployment asked for. Redis buses start connecting at once. */
export function createBus(options: CreateBusOptions): Bus {
  const { kind, redisUrl, logger, sentinel, commandTimeoutMs } = options;
  switch (kind) {
    case 'memory':
      return createMemoryBus({ logger });
    case 'redis':
      if (!redisUrl) throw new Error('bus kind "redis" needs redisUrl');
      return createRedisBus({ url: redisUrl, logger, sentinel, commandTimeoutMs });
    case 'redis-cluster':
      if (!redisUrl) throw new Error('bus kind "redis-cluster" needs redisUrl');
      return createRedisBus({ url: redisUrl, cluster: true, logger, commandTimeoutMs });
    default:
      throw new Error(`unknown bus kind: ${String(kind satisfies never)}`);
  }
}
