/**
 * The Redis Cluster fence (src/bus/redis-cluster-fence.ts) against a fake three-master slot
 * table, and the cluster seed parsing of src/bus/redis-connections.ts. The fence against a
 * real cluster, and keySlot against CLUSTER KEYSLOT, run in bus-contract.test.ts.
 */
import t from 'tap';
import { createClusterFence, type FenceTarget, keySlot } from '../src/bus/redis-cluster-fence.js';
import { clusterSeeds, COMMON } from '../src/bus/redis-connections.js';
import { conversationChannel } from '../src/redis/names.js';

/** Three masters splitting the 16384 slots the way `redis-cli --cluster create` does. */
const threeMasters = (slot: number): string => (slot <= 5460 ? 'a:1' : slot <= 10922 ? 'b:2' : 'c:3');

/** A target whose probe answers `holds(owner)` plus the fence channel itself. */
function fakeTarget(holds: (owner: string) => number, ownerOf: (slot: number) => string | undefined = threeMasters) {
  const probes: { name: string; owner: string | undefined }[] = [];
  const target: FenceTarget = {
    ownerOf,
    async probe(name) {
      const owner = ownerOf(keySlot(name));
      probes.push({ name, owner });
      return owner === undefined ? 0 : holds(owner) + 1;
    },
  };
  return { target, probes };
}

/** `count` conversation channels whose slots `threeMasters` gives to `owner`. */
function channelsOn(owner: string, count: number): string[] {
  const found: string[] = [];
  for (let id = 1; found.length < count; id++) {
    const channel = conversationChannel(id);
    if (threeMasters(keySlot(channel)) === owner) found.push(channel);
  }
  return found;
}

t.test('keySlot: CRC16 of the key or of its first non-empty {hash tag}, mod 16384', async (t) => {
  t.equal(keySlot('123456789'), 0x31c3 & 0x3fff, 'the CRC16/XMODEM check value');
  t.equal(keySlot('foo'), 12182);
  t.equal(keySlot('{user1000}.following'), keySlot('{user1000}.followers'));
  t.equal(keySlot('foo{bar}{zap}'), keySlot('bar'), 'the first tag');
  t.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'));
  t.not(keySlot('foo{}{bar}'), keySlot('bar'), 'an empty tag: the whole key');
  t.equal(keySlot(conversationChannel(42)), keySlot('conv:42'));
});

t.test('nothing held: nothing probed', async (t) => {
  const { target, probes } = fakeTarget(() => 0);
  await createClusterFence('x').check(target, []);
  t.same(probes, []);
});

t.test("one probe per owner in use, on that owner's slots; enough held passes", async (t) => {
  const onA = channelsOn('a:1', 3);
  const onC = channelsOn('c:3', 1);
  const { target, probes } = fakeTarget((owner) => ({ 'a:1': 3, 'c:3': 1 })[owner] ?? 0);
  await createClusterFence('x').check(target, [...onA, ...onC]);
  t.same(probes.map((probe) => probe.owner).sort(), ['a:1', 'c:3'], 'b serves none of ours: not asked');
  t.ok(probes.every((probe) => probe.name.startsWith('chat:bus-fence:{x:')), "names of this instance's own");
});

t.test('more held than ours passes (a channel whose SUNSUBSCRIBE failed)', async (t) => {
  const { target } = fakeTarget(() => 5);
  await t.resolves(createClusterFence('x').check(target, channelsOn('b:2', 2)));
});

t.test('an owner holding fewer than ours fails the check', async (t) => {
  const { target } = fakeTarget((owner) => (owner === 'b:2' ? 1 : 2));
  await t.rejects(
    createClusterFence('x').check(target, [...channelsOn('a:1', 2), ...channelsOn('b:2', 2)]),
    /subscriber on b:2 holds 1 of our 2 channels/,
  );
});

t.test('a channel whose slot no node serves fails the check', async (t) => {
  const { target, probes } = fakeTarget(
    () => 0,
    (slot) => (slot <= 5460 ? 'a:1' : undefined),
  );
  const channel = channelsOn('c:3', 1)[0] ?? '';
  await t.rejects(createClusterFence('x').check(target, [channel]), new RegExp(`no node serves the slot of ${channel}`));
  t.same(probes, []);
});

t.test('fence channels: one per owner, remembered, found again after a slot move', async (t) => {
  let moved = false;
  const ownerOf = (slot: number): string => (moved && slot <= 5460 ? 'b:2' : threeMasters(slot));
  const { target } = fakeTarget(() => 0, ownerOf);
  const fence = createClusterFence('x');
  const onA = fence.channelFor(target, 'a:1');
  t.equal(ownerOf(keySlot(onA)), 'a:1');
  t.equal(fence.channelFor(target, 'a:1'), onA, 'remembered');
  t.not(createClusterFence('y').channelFor(target, 'a:1'), onA, 'another instance has its own');

  const onB = fence.channelFor(target, 'b:2');
  moved = true; // a's slots go to b, and a takes none
  t.equal(fence.channelFor(target, 'b:2'), onB, 'still served by b');
  t.throws(() => fence.channelFor(target, 'a:1'), /no fence channel found for a:1/);
  moved = false;
  t.equal(fence.channelFor(target, 'a:1'), onA, 'the same name is found again once a serves it');
});

t.test('clusterSeeds: the URL alone by default, with its credentials and TLS', async (t) => {
  const seeds = clusterSeeds('rediss://us%40r:p%3Ass@cache.example:7000');
  t.same(seeds.nodes, [{ host: 'cache.example', port: 7000 }]);
  t.equal(seeds.redisOptions.username, 'us@r');
  t.equal(seeds.redisOptions.password, 'p:ss');
  t.same(seeds.redisOptions.tls, {});
  t.match(seeds.redisOptions, COMMON, 'every node gets the common options');
});

t.test('clusterSeeds: host:port and URL seeds, IPv6 and the default port', async (t) => {
  const seeds = clusterSeeds('redis://10.0.0.1:7000', ['10.0.0.1:7000', 'redis://10.0.0.2', '[::1]:7002']);
  t.same(seeds.nodes, [
    { host: '10.0.0.1', port: 7000 },
    { host: '10.0.0.2', port: 6379 },
    { host: '::1', port: 7002 },
  ]);
  t.equal(seeds.redisOptions.username, undefined);
  t.equal(seeds.redisOptions.password, undefined);
  t.equal(seeds.redisOptions.tls, undefined);
});
