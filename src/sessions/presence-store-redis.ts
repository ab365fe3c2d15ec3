import { randomBytes } from 'node:crypto';
import { unavailable } from '../domain/errors.js';
import { presenceLeaseKey, presenceLeasesKey, presenceLeaseUsersKey, presenceUserKey } from '../redis/names.js';
import { sessionRedis, type SessionRedisTarget } from './redis-client.js';
import {
  leaseTickMs,
  leaseTtlMs,
  type PresenceChange,
  type PresenceCommandKind,
  type PresenceStore,
  type PresenceStoreObserver,
} from './presence-store.js';

/** Adds the lease to the user's set: 1 when it was the first (the user came online). */
const ARRIVE = `
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 1 then return 1 end
return 0`;
/** Takes the lease out of the user's set: 1 when it was the last (the user went offline). */
const DEPART = `
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0`;
const OPEN = `
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
redis.call('SADD', KEYS[1], ARGV[2])
return 1`;
/**
 * Renews this replica's lease (only if it still exists) and lists the leases whose key has
 * expired: `{renewed (1/0), dead ids...}`. The lease keys share the `{presence}` hash tag with
 * the set, so on a cluster they live in its slot.
 */
const TICK = `
local renewed = redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'XX')
local out = { renewed and 1 or 0 }
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[2] and redis.call('EXISTS', ARGV[3] .. id) == 0 then table.insert(out, id) end
end
return out`;
const WITHDRAW = `
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return 1`;

/** Users a sweep takes out of a dead lease per step (SPOP count). */
const SWEEP_BATCH = 100;
const LEASE_KEY_PREFIX = presenceLeaseKey('');

const newLeaseId = (): string => randomBytes(9).toString('base64url');

export interface RedisPresenceOptions extends SessionRedisTarget {
  /** PRESENCE_TIMEOUT_SECONDS in ms. */
  timeoutMs: number;
  observer?: PresenceStoreObserver;
}

/**
 * Presence on Redis with one lease per replica (see PresenceStore): each user's set of leases
 * (`{user:id}:presence`), each lease's set of users, and the set of leases. Going online or
 * offline on this replica is one script on the user's key plus one set update on the lease's;
 * the lease tick is one script per replica, whatever the number of users.
 */
export function createRedisPresenceStore(options: RedisPresenceOptions): PresenceStore {
  const { client, close: closeClient } = sessionRedis(options);
  const observer = options.observer ?? {};
  const ttl = leaseTtlMs(options.timeoutMs);
  const listeners: ((change: PresenceChange) => void)[] = [];
  /** Users this replica holds now. */
  const local = new Set<number>();
  /** Users whose entry for the current lease may be in Redis (arrived, not yet departed for sure). */
  let registered = new Set<number>();
  let leaseId = newLeaseId();
  let needsResync = false;
  let busy = false;
  let closed = false;
  const sweeping = new Set<string>();

  const count = (kind: PresenceCommandKind, n = 1) => observer.commands?.(kind, n);
  const emit = (change: PresenceChange) => {
    for (const listener of listeners) listener(change);
  };
  const failed = (error: unknown) => {
    needsResync = true;
    observer.failed?.(error);
  };

  const open = (id: string): Promise<unknown> => {
    count('lease');
    return client.eval(OPEN, 2, presenceLeasesKey, presenceLeaseKey(id), ttl, id);
  };

  const arriveAs = (id: string, userId: number, kind: PresenceCommandKind): Promise<void> => {
    count(kind, 2);
    void client.sadd(presenceLeaseUsersKey(id), userId).catch(failed);
    return client.eval(ARRIVE, 1, presenceUserKey(userId), id).then((result) => {
      if (Number(result) === 1) emit({ userId, status: 'online' });
    });
  };

  const departAs = (id: string, userId: number, kind: PresenceCommandKind): Promise<void> => {
    count(kind, kind === 'sweep' ? 1 : 2);
    if (kind !== 'sweep') void client.srem(presenceLeaseUsersKey(id), userId).catch(failed);
    return client.eval(DEPART, 1, presenceUserKey(userId), id).then((result) => {
      if (Number(result) === 1) emit({ userId, status: 'offline' });
    });
  };

  /** A new lease, this replica's users under it, then the old lease's entries taken out. */
  const resync = async (): Promise<void> => {
    needsResync = false;
    const oldId = leaseId;
    const oldRegistered = registered;
    leaseId = newLeaseId();
    registered = new Set(local);
    const id = leaseId;
    await open(id);
    await Promise.all([...local].map((userId) => arriveAs(id, userId, 'resync')));
    await Promise.all([...oldRegistered].map((userId) => departAs(oldId, userId, 'resync')));
    count('resync');
    await client.eval(WITHDRAW, 3, presenceLeasesKey, oldId, presenceLeaseKey(oldId), presenceLeaseUsersKey(oldId));
  };

  /** Takes a dead lease's users out, a batch at a time (SPOP: concurrent sweepers share the work). */
  const sweep = async (deadId: string): Promise<void> => {
    if (sweeping.has(deadId)) return;
    sweeping.add(deadId);
    try {
      for (;;) {
        count('sweep');
        const users = await client.spop(presenceLeaseUsersKey(deadId), SWEEP_BATCH);
        if (users.length === 0) break;
        await Promise.all(users.map((user) => departAs(deadId, Number(user), 'sweep')));
      }
      count('sweep');
      await client.srem(presenceLeasesKey, deadId);
    } finally {
      sweeping.delete(deadId);
    }
  };

  const tick = async (): Promise<void> => {
    if (busy || closed) return;
    busy = true;
    try {
      if (needsResync) return await resync();
      count('lease');
      const [renewed, ...dead] = (await client.eval(TICK, 2, presenceLeasesKey, presenceLeaseKey(leaseId), ttl, leaseId, LEASE_KEY_PREFIX)) as [
        number,
        ...string[],
      ];
      if (Number(renewed) !== 1) return await resync();
      await Promise.all(dead.map(sweep));
    } catch (error) {
      failed(error);
    } finally {
      busy = false;
    }
  };

  open(leaseId).catch(failed);
  const timer = setInterval(() => void tick(), leaseTickMs(options.timeoutMs));
  timer.unref();

  return {
    arrive(userId) {
      if (closed || local.has(userId)) return;
      local.add(userId);
      registered.add(userId);
      arriveAs(leaseId, userId, 'change').catch(failed);
    },
    depart(userId) {
      if (closed || !local.delete(userId)) return;
      const id = leaseId;
      departAs(id, userId, 'change').then(
        () => {
          if (id === leaseId) registered.delete(userId);
        },
        failed,
      );
    },
    async online(userIds) {
      if (userIds.length === 0) return new Set();
      count('read', userIds.length);
      let sizes: number[];
      try {
        // One SCARD per user, auto-pipelined into one round trip (per slot on a cluster).
        sizes = await Promise.all(userIds.map((id) => client.scard(presenceUserKey(id))));
      } catch (error) {
        throw unavailable('redis', error);
      }
      return new Set(userIds.filter((_, index) => sizes[index]! > 0));
    },
    onChange: (listener) => void listeners.push(listener),
    async close() {
      closed = true;
      clearInterval(timer);
      // The users still held here leave with the lease (the tracker departs them first on a
      // graceful close); a replica that cannot reach Redis now leaves its lease to the sweep.
      try {
        await Promise.all([...local].map((userId) => departAs(leaseId, userId, 'change')));
        count('resync');
        await client.eval(WITHDRAW, 3, presenceLeasesKey, leaseId, presenceLeaseKey(leaseId), presenceLeaseUsersKey(leaseId));
      } catch {
        // Swept within the timeout instead.
      }
      local.clear();
      closeClient();
    },
  };
}
