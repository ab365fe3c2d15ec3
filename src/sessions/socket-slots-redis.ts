import { unavailable } from '../domain/errors.js';
import { socketSlotsKey } from '../redis/names.js';
import { sessionRedis, type SessionRedisTarget } from './redis-client.js';
import { LEASE_MS, type SocketSlots } from './socket-slots.js';

/** Drops lapsed leases, then adds the slot if there is room: one atomic step per socket. */
const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;

/** Shared by every replica: a sorted set per user of socket ids scored by lease expiry. */
export function createRedisSocketSlots(options: SessionRedisTarget & { now?: () => number }): SocketSlots {
  const now = options.now ?? Date.now;
  const { client, close: closeClient } = sessionRedis(options);
  const held = new Map<string, number>();
  // Renews this instance's leases; one pipelined ZADD XX per open socket.
  const renew = setInterval(() => {
    const expiry = now() + LEASE_MS;
    for (const [socketId, userId] of held) {
      client.zadd(socketSlotsKey(userId), 'XX', expiry, socketId).catch(() => {});
      client.pexpire(socketSlotsKey(userId), LEASE_MS).catch(() => {});
    }
  }, LEASE_MS / 3);
  renew.unref();
  return {
    async acquire(userId, socketId, limit) {
      if (limit === 0) return true;
      const time = now();
      let result: unknown;
      try {
        result = await client.eval(ACQUIRE, 1, socketSlotsKey(userId), time, time + LEASE_MS, limit, socketId, LEASE_MS);
      } catch (error) {
        throw unavailable('redis', error);
      }
      if (Number(result) !== 1) return false;
      held.set(socketId, userId);
      return true;
    },
    release(userId, socketId) {
      if (!held.delete(socketId)) return;
      client.zrem(socketSlotsKey(userId), socketId).catch(() => {});
    },
    async close() {
      clearInterval(renew);
      held.clear();
      closeClient();
    },
  };
}
