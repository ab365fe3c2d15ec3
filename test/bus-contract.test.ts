/**
 * One contract for every Bus implementation (the guarantees in src/bus/bus.ts), run against the
 * in-process bus, a test-started redis-server, and a three-master Redis Cluster (sharded pub/sub).
 * Two bus instances on one broker stand for two replicas; the memory bus is single-node, so the
 * tests that need a second instance run on Redis only.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import t, { type Test } from 'tap';
import type { Bus, BusLogger } from '../src/bus/bus.js';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { createRedisBus, type RedisBus } from '../src/bus/bus-redis.js';
import { keySlot } from '../src/bus/redis-cluster-fence.js';
import { conversationChannel } from '../src/redis/names.js';
import { createBus } from '../src/bus/factory.js';
import { redisCli, startRedisCluster, startRedisServer } from './helpers/redis-server.js';
import { within } from './helpers/within.js';

/** What the contract checks beyond `Bus`: both implementations expose these. */
interface TestBus extends Bus {
  settled(): Promise<void>;
  messagesReceived(): number;
}

interface Backend {
  /** Two instances on one broker, or the same instance twice for a single-node bus. */
  pair(t: Test): Promise<[TestBus, TestBus]>;
  /** Whether `pair` gives two distinct instances (replicas). */
  replicas: boolean;
  /** Subscriptions to `channel` the broker holds, over all instances. */
  brokerSubscribers?(channel: string): Promise<number>;
  /** Stops and starts the broker (in a cluster: the master serving `channel`). */
  restartBroker?(channel: string): Promise<void>;
  /** Stops the broker serving `channel`; the returned function starts it again. */
  stopBroker?(channel: string): Promise<() => Promise<void>>;
}

const RESTART_TIMEOUT_MS = 30_000;

let nextConversation = 1;
/** Every test gets channels of its own, so nothing one test publishes reaches another. */
const freshChannel = (): string => conversationChannel(nextConversation++);


const settle = (promise: Promise<unknown>): Promise<'resolved' | 'rejected'> =>
  promise.then(
    () => 'resolved' as const,
    () => 'rejected' as const,
  );

/** A listener that records payloads, and a way to wait until it holds `count` of them. */
function recorder(): { listener: (payload: string) => void; payloads: string[]; until(count: number): Promise<string[]> } {
  const payloads: string[] = [];
  const waiters: { count: number; resolve: (payloads: string[]) => void }[] = [];
  return {
    payloads,
    listener(payload) {
      payloads.push(payload);
      for (const waiter of [...waiters]) {
        if (payloads.length >= waiter.count) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(payloads);
        }
      }
    },
    until(count) {
      if (payloads.length >= count) return Promise.resolve(payloads);
      return within(new Promise((resolve) => waiters.push({ count, resolve })), `${count} payloads (have ${payloads.length})`);
    },
  };
}

/** Resolves on the bus' next onReset, recording what the bus looked like at that moment. */
function nextReset(bus: Bus, channel: string): Promise<{ subscribed: boolean; healthy: boolean }> {
  return new Promise((resolve) => {
    const off = bus.onReset(() => {
      off();
      resolve({ subscribed: bus.subscribedChannels().includes(channel), healthy: bus.isHealthy() });
    });
  });
}

function busContract(name: string, setUp: (t: Test) => Promise<Backend>): void {
  t.test(name, async (t) => {
    const backend = await setUp(t);

    t.test('delivers a publish to subscribers, on this instance and (Redis) on another', async (t) => {
      const [a, b] = await backend.pair(t);
      const channel = freshChannel();
      const onA = recorder();
      const onB = recorder();
      await a.subscribe(channel, onA.listener);
      await b.subscribe(channel, onB.listener);
      await a.publish(channel, 'hello');
      t.same(await onB.until(1), ['hello'], backend.replicas ? 'the other replica got it' : 'delivered');
      t.same(await onA.until(1), ['hello'], 'the publishing instance got it');
      t.ok(a.isHealthy() && b.isHealthy());
    });

    t.test('keeps the order of 1,000 payloads from one publisher', async (t) => {
      const [a, b] = await backend.pair(t);
      const channel = freshChannel();
      const onB = recorder();
      await b.subscribe(channel, onB.listener);
      const sent = Array.from({ length: 1000 }, (_, i) => `payload-${i}`);
      // Not awaited one by one: they pipeline, which is where reordering would show.
      await Promise.all(sent.map((payload) => a.publish(channel, payload)));
      t.same(await onB.until(sent.length), sent);
    });

    t.test('reference counts listeners: one broker subscription per channel', async (t) => {
      const [a, b] = await backend.pair(t);
      const channel = freshChannel();
      const first = recorder();
      const second = recorder();
      const detachFirst = await b.subscribe(channel, first.listener);
      const detachSecond = await b.subscribe(channel, second.listener);
      t.same(b.subscribedChannels(), [channel]);
      if (backend.brokerSubscribers) {
        t.equal(await backend.brokerSubscribers(channel), 1, 'two listeners, one broker subscription');
      }
      await a.publish(channel, 'both');
      t.same(await first.until(1), ['both']);
      t.same(await second.until(1), ['both']);

      detachFirst();
      detachFirst(); // idempotent: must not take the second listener's reference too
      await b.settled();
      t.same(b.subscribedChannels(), [channel], 'still subscribed for the second listener');
      await a.publish(channel, 'second only');
      t.same(await second.until(2), ['both', 'second only']);
      t.same(first.payloads, ['both'], 'a detached listener gets nothing more');

      detachSecond();
      await b.settled();
      t.same(b.subscribedChannels(), [], 'no listeners, no subscription');
      if (backend.brokerSubscribers) {
        t.equal(await backend.brokerSubscribers(channel), 0, 'the broker has dropped the channel');
      }
    });

    t.test('an instance receives nothing of channels it has no listener for', async (t) => {
      const [a, b] = await backend.pair(t);
      // One hash tag: in a cluster both live on one node, so the marker cannot overtake the rest.
      const busy = freshChannel();
      const marker = busy.replace(':events', ':marker');
      const onBusy = recorder();
      const onMarker = recorder();
      if (backend.replicas) await a.subscribe(busy, onBusy.listener);
      await b.subscribe(marker, onMarker.listener);
      const before = b.messagesReceived();
      await Promise.all(Array.from({ length: 50 }, (_, i) => a.publish(busy, `busy-${i}`)));
      await a.publish(marker, 'marker');
      await onMarker.until(1);
      if (backend.replicas) t.equal((await onBusy.until(50)).length, 50, 'the subscribed replica got the traffic');
      t.equal(b.messagesReceived() - before, 1, 'only the marker reached the instance without a listener');
      t.notOk(b.subscribedChannels().includes(busy));
      if (backend.brokerSubscribers) {
        t.equal(await backend.brokerSubscribers(busy), backend.replicas ? 1 : 0, 'only the listening replica is subscribed');
      }
    });

    t.test('subscribe while an unsubscribe is in flight ends subscribed', async (t) => {
      const [a, b] = await backend.pair(t);
      const channel = freshChannel();
      const first = recorder();
      const detach = await b.subscribe(channel, first.listener);
      detach(); // the last detach: an unsubscribe goes out now
      const second = recorder();
      const detachSecond = await b.subscribe(channel, second.listener);
      t.same(b.subscribedChannels(), [channel]);
      await b.settled();
      if (backend.brokerSubscribers) t.equal(await backend.brokerSubscribers(channel), 1);
      await a.publish(channel, 'after the race');
      t.same(await second.until(1), ['after the race']);
      t.same(first.payloads, []);
      detachSecond();
      await b.settled();
      if (backend.brokerSubscribers) t.equal(await backend.brokerSubscribers(channel), 0);
    });

    t.test('concurrent subscribes and detaches converge on the last state', async (t) => {
      const [a, b] = await backend.pair(t);
      const channel = freshChannel();
      const noop = (): void => {};
      // Many subscribes at once share one broker subscription...
      const detaches = await Promise.all(Array.from({ length: 10 }, () => b.subscribe(channel, noop)));
      t.same(b.subscribedChannels(), [channel]);
      // ...then detach all and resubscribe in a tight loop, racing each unsubscribe.
      for (const detach of detaches) detach();
      let detach = await b.subscribe(channel, noop);
      for (let i = 0; i < 20; i++) {
        detach();
        detach = await b.subscribe(channel, noop);
      }
      const last = recorder();
      const detachLast = await b.subscribe(channel, last.listener);
      await b.settled();
      t.same(b.subscribedChannels(), [channel]);
      if (backend.brokerSubscribers) t.equal(await backend.brokerSubscribers(channel), 1);
      await a.publish(channel, 'converged');
      t.same(await last.until(1), ['converged']);

      // And down to zero, with subscribes started and detached within one turn.
      const pending = Array.from({ length: 5 }, () => b.subscribe(channel, noop));
      detach();
      detachLast();
      for (const d of await Promise.all(pending)) d();
      await b.settled();
      t.same(b.subscribedChannels(), []);
      if (backend.brokerSubscribers) t.equal(await backend.brokerSubscribers(channel), 0);
    });

    t.test('after close, publish and subscribe reject and the bus is not healthy', async (t) => {
      const [a] = await backend.pair(t);
      await a.close();
      await a.close(); // idempotent
      t.notOk(a.isHealthy());
      await t.rejects(a.publish(freshChannel(), 'x'));
      await t.rejects(a.subscribe(freshChannel(), () => {}));
    });

    if (backend.replicas && backend.stopBroker) {
      const stopBroker = backend.stopBroker;
      t.test('while the broker is down publish and subscribe fail fast; then the bus recovers', async (t) => {
        const [a, b] = await backend.pair(t);
        const channel = freshChannel();
        const onB = recorder();
        await a.subscribe(channel, () => {});
        await b.subscribe(channel, onB.listener);
        const resets = Promise.all([nextReset(a, channel), nextReset(b, channel)]);
        const start = await stopBroker(channel);
        // A channel on the same (stopped) node, so the subscribe has nowhere to go.
        const other = channel.replace(':events', ':other');
        try {
          const began = Date.now();
          const publish = await within(settle(a.publish(channel, 'into the void')), 'the publish to settle', 5_000);
          const subscribe = await within(settle(b.subscribe(other, () => {})), 'the subscribe to settle', 5_000);
          t.equal(publish, 'rejected', 'publish rejected');
          t.equal(subscribe, 'rejected', 'subscribe rejected');
          t.ok(Date.now() - began < 5_000, `both settled within ${Date.now() - began} ms`);
        } finally {
          await start();
        }
        t.same(await within(resets, 'onReset on both instances', RESTART_TIMEOUT_MS), [
          { subscribed: true, healthy: true },
          { subscribed: true, healthy: true },
        ]);
        await a.publish(channel, 'back');
        t.same(await onB.until(1), ['back']);
        t.notOk(b.subscribedChannels().includes(other), 'the failed subscribe left no subscription');
        if (backend.brokerSubscribers) t.equal(await backend.brokerSubscribers(other), 0, 'not at the broker either');
      });
    }

    if (backend.replicas && backend.restartBroker) {
      const restartBroker = backend.restartBroker;
      t.test('broker restart mid-stream: resubscribe, onReset, then delivery again', { timeout: 60_000 }, async (t) => {
        const [a, b] = await backend.pair(t);
        const channel = freshChannel();
        const onA = recorder();
        const onB = recorder();
        await a.subscribe(channel, onA.listener);
        await b.subscribe(channel, onB.listener);
        const resets = Promise.all([nextReset(a, channel), nextReset(b, channel)]);

        // One payload in flight at a time, until the broker is back; failures are expected.
        let streaming = true;
        let sent = 0;
        let failed = 0;
        const stream = (async () => {
          for (let i = 0; streaming; i++) {
            try {
              await a.publish(channel, `stream-${i}`);
              sent++;
            } catch {
              failed++;
            }
            await nextTurn();
          }
        })();
        await onB.until(5); // the stream flows before the restart
        await restartBroker(channel);
        streaming = false;
        await stream;

        const [resetA, resetB] = await within(resets, 'onReset on both instances', RESTART_TIMEOUT_MS);
        t.same(resetB, { subscribed: true, healthy: true }, 'onReset came after resubscribing, with both connections up');
        t.same(resetA, { subscribed: true, healthy: true });
        if (backend.brokerSubscribers) t.equal(await backend.brokerSubscribers(channel), 2, 'both replicas resubscribed once');
        t.comment(`stream: ${sent} published, ${failed} rejected during the restart`);

        const before = onB.payloads.length;
        const after = Array.from({ length: 20 }, (_, i) => `after-${i}`);
        for (const payload of after) await a.publish(channel, payload);
        const got = await onB.until(before + after.length);
        t.same(got.slice(before), after, 'everything published after the reset arrives, in order');

        const streamed = got.slice(0, before).map((payload) => Number(payload.slice('stream-'.length)));
        t.same(streamed, [...streamed].sort((x, y) => x - y), 'stream payloads in order');
        t.equal(new Set(streamed).size, streamed.length, 'no payload delivered twice');
      });
    }
  });
}

/** Quiet unless a test wants to look; keeps reconnect noise out of the TAP stream. */
const logger: BusLogger = { warn() {}, info() {} };

busContract('memory', async () => ({
  replicas: false,
  async pair(t) {
    const bus = createMemoryBus();
    t.teardown(() => bus.close());
    return [bus, bus];
  },
}));

busContract('redis', async (t) => {
  const server = await startRedisServer(t);
  return {
    replicas: true,
    async pair(t) {
      const buses = [createRedisBus({ url: server.url, logger }), createRedisBus({ url: server.url, logger })] as const;
      t.teardown(() => Promise.all(buses.map((bus) => bus.close())));
      await within(Promise.all(buses.map((bus) => bus.ready())), 'both buses to connect');
      return [buses[0], buses[1]];
    },
    async brokerSubscribers(channel) {
      const reply = await redisCli(server.port, 'PUBSUB', 'NUMSUB', channel);
      return Number(reply.trim().split('\n')[1]);
    },
    restartBroker: () => server.restart(),
    async stopBroker() {
      await server.stop();
      return () => server.restart();
    },
  };
});

busContract('redis-cluster', async (t) => {
  const cluster = await startRedisCluster(t, { masters: 3 });
  const nodes = cluster.urls.map((url) => url.replace('redis://', ''));
  t.test('keySlot agrees with CLUSTER KEYSLOT (the bus routes its checks by it)', async (t) => {
    const port = cluster.nodes[0]?.port ?? 0;
    for (const key of [conversationChannel(42), 'no-tag', 'empty{}tag', '{a}{b}', 'x{y', 'ünï{cödé}']) {
      t.equal(keySlot(key), Number((await redisCli(port, 'CLUSTER', 'KEYSLOT', key)).trim()), key);
    }
  });
  return {
    replicas: true,
    async pair(t) {
      const make = (): RedisBus => createRedisBus({ url: cluster.urls[0] ?? '', cluster: { nodes }, logger });
      const buses = [make(), make()] as const;
      t.teardown(() => Promise.all(buses.map((bus) => bus.close())));
      await within(Promise.all(buses.map((bus) => bus.ready())), 'both buses to connect');
      return [buses[0], buses[1]];
    },
    async brokerSubscribers(channel) {
      // SHARDNUMSUB answers for the node asked; the others report 0.
      const counts = await Promise.all(
        cluster.nodes.map(async (node) => {
          const reply = await redisCli(node.port, 'PUBSUB', 'SHARDNUMSUB', channel);
          return Number(reply.trim().split('\n')[1]);
        }),
      );
      return counts.reduce((sum, count) => sum + count, 0);
    },
    restartBroker: async (channel) => (await cluster.ownerOf(channel)).restart(),
    async stopBroker(channel) {
      const owner = await cluster.ownerOf(channel);
      await owner.stop();
      return () => owner.restart();
    },
  };
});

t.test('factory', async (t) => {
  const memory = createBus({ kind: 'memory' });
  t.ok(memory.isHealthy());
  await memory.close();
  t.throws(() => createBus({ kind: 'nope' as never }), /unknown bus kind/);
  t.throws(() => createBus({ kind: 'redis' }), /redisUrl/);
  t.throws(() => createBus({ kind: 'redis-cluster' }), /"redis-cluster" needs redisUrl/);
});
