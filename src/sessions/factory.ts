import { createMemorySocketSlots } from './socket-slots-memory.js';
import { createRedisSocketSlots } from './socket-slots-redis.js';
import type { SocketSlots } from './socket-slots.js';
import { createMemoryTicketStore } from './ticket-store-memory.js';
import { createRedisTicketStore } from './ticket-store-redis.js';
import type { TicketStore } from './ticket-store.js';
import type { SentinelTarget } from '../redis/target.js';

export type SessionStoreKind = 'memory' | 'redis' | 'redis-cluster';

export interface SessionStores {
  tickets: TicketStore;
  socketSlots: SocketSlots;
  close(): Promise<void>;
}

/** Builds the ticket store and socket counter a deployment asked for (REDIS_URL, REDIS_CLUSTER). */
export function createSessionStores(options: {
  kind: SessionStoreKind;
  redisUrl?: string;
  /** `redis` only: follow the primary these Sentinels name. */
  sentinel?: SentinelTarget | undefined;
  commandTimeoutMs?: number | undefined;
}): SessionStores {
  const { kind, redisUrl, sentinel, commandTimeoutMs } = options;
  let tickets: TicketStore;
  let socketSlots: SocketSlots;
  switch (kind) {
    case 'memory':
      tickets = createMemoryTicketStore();
      socketSlots = createMemorySocketSlots();
      break;
    case 'redis':
    case 'redis-cluster': {
      if (!redisUrl) throw new Error(`session store kind "${kind}" needs redisUrl`);
      const cluster = kind === 'redis-cluster';
      const target = { url: redisUrl, cluster, sentinel: cluster ? undefined : sentinel, commandTimeoutMs };
      tickets = createRedisTicketStore(target);
      socketSlots = createRedisSocketSlots(target);
      break;
    }
    default:
      throw new Error(`unknown session store kind: ${String(kind satisfies never)}`);
  }
  return {
    tickets,
    socketSlots,
    async close() {
      await Promise.all([tickets.close(), socketSlots.close()]);
    },
  };
}
