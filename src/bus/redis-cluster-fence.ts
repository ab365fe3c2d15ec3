import calculateSlot from 'cluster-key-slot';
import { KEY_PREFIX } from '../redis/names.js';

/** Redis Cluster's key slot (CRC16 of the key, or of its `{hash tag}`, mod 16384): what the fence routes by. */
export const keySlot = (key: string): number => calculateSlot(key);

/** What the fence needs of a cluster subscriber client. */
export interface FenceTarget {
  /** The master serving `slot` as the client sees it (ioredis' `cluster.slots[slot][0]`). */
  ownerOf(slot: number): string | undefined;
  /**
   * SSUBSCRIBE `name` on the subscriber connection of its slot's owner, then SUNSUBSCRIBE it;
   * resolves with the count the SSUBSCRIBE reply gave (the shard channels that connection holds).
   */
  probe(name: string): Promise<number>;
}

/**
 * ioredis resubscribes sharded channels itself, fire-and-forget, at a moment it does not
 * report reliably. So the fence asks each subscriber connection in use: a SSUBSCRIBE of a
 * throwaway channel there is answered after everything sent before it, with the number of shard
 * channels the connection holds. Fewer than ours means the resubscription has not reached the
 * server yet, and the restore is tried again later.
 */
export interface ClusterFence {
  /** Resolves when every owner's connection holds at least our `held` channels on it; rejects otherwise. */
  check(target: FenceTarget, held: Iterable<string>): Promise<void>;
  /** A channel name of this instance's own whose slot `owner` serves (remembered per owner). */
  channelFor(target: FenceTarget, owner: string): string;
}

/** Throwaway channel names tried per owner before giving up (each lands in a pseudo-random slot). */
const FENCE_NAME_TRIES = 100_000;

/** `instanceId` keeps two bus instances' fence channels apart. */
export function createClusterFence(instanceId: string): ClusterFence {
  const names = new Map<string, string>();

  const channelFor = (target: FenceTarget, owner: string): string => {
    const cached = names.get(owner);
    if (cached !== undefined && target.ownerOf(keySlot(cached)) === owner) return cached;
    for (let i = 0; i < FENCE_NAME_TRIES; i++) {
      const name = `${KEY_PREFIX}bus-fence:{${instanceId}:${i}}`;
      if (target.ownerOf(keySlot(name)) === owner) {
        names.set(owner, name);
        return name;
      }
    }
    throw new Error(`no fence channel found for ${owner}`);
  };

  return {
    channelFor,

    async check(target, held) {
      const expected = new Map<string, number>();
      for (const channel of held) {
        const owner = target.ownerOf(keySlot(channel));
        if (owner === undefined) throw new Error(`no node serves the slot of ${channel}`);
        expected.set(owner, (expected.get(owner) ?? 0) + 1);
      }
      await Promise.all(
        [...expected].map(async ([owner, ours]) => {
          const count = await target.probe(channelFor(target, owner));
          // At least: a channel whose SUNSUBSCRIBE failed may still be held; it is not one of ours.
          if (count < ours + 1) throw new Error(`subscriber on ${owner} holds ${count - 1} of our ${ours} channels`);
        }),
      );
    },
  };
}
