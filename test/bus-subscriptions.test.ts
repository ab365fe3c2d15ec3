/**
 * The broker side of reference-counted subscriptions (src/bus/redis-subscriptions.ts), against a
 * fake link whose replies the test releases one by one: every interleaving here is chosen, none
 * left to timing. The real broker runs in bus-contract.test.ts.
 */
import { setImmediate as drain } from 'node:timers/promises';
import t from 'tap';
import { createBrokerSubscriptions } from '../src/bus/redis-subscriptions.js';

interface Sent {
  channel: string;
  want: boolean;
  resolve(): void;
  reject(err: Error): void;
}

/** A link whose commands wait for the test, plus the local listener counts. */
function setUp() {
  const sent: Sent[] = [];
  const listeners = new Map<string, number>();
  const state = { generation: 0, down: undefined as Error | undefined, closed: false };
  const subscriptions = createBrokerSubscriptions({
    link: {
      send(channel, want) {
        // Like the real link: a client known to be down throws before anything is sent.
        if (state.down) throw state.down;
        return new Promise<void>((resolve, reject) => sent.push({ channel, want, resolve, reject }));
      },
      generation: () => state.generation,
    },
    wanted: (channel) => (listeners.get(channel) ?? 0) > 0,
    isClosed: () => state.closed,
  });
  const want = (channel: string, delta: 1 | -1): void => {
    listeners.set(channel, (listeners.get(channel) ?? 0) + delta);
  };
  /** The commands sent so far, as `+channel` (subscribe) and `-channel` (unsubscribe). */
  const log = (): string[] => sent.map((command) => `${command.want ? '+' : '-'}${command.channel}`);
  /** Replies to the oldest unanswered command, then lets the loop react. */
  const reply = async (index: number, err?: Error): Promise<void> => {
    const command = sent[index];
    if (!command) throw new Error(`no command #${index}`);
    if (err) command.reject(err);
    else command.resolve();
    await drain();
  };
  return { subscriptions, sent, state, want, log, reply };
}

t.test('one SUBSCRIBE while a channel is wanted; hold resolves once the broker has it', async (t) => {
  const { subscriptions, want, log, reply } = setUp();
  want('a', 1);
  let held: boolean | undefined;
  void subscriptions.hold('a', () => true).then((value) => (held = value));
  await drain();
  t.same(log(), ['+a']);
  t.equal(held, undefined, 'not before the reply');
  t.same(subscriptions.held(), [], 'not held before the reply');
  await reply(0);
  t.equal(held, true);
  t.same(subscriptions.held(), ['a']);
  t.same(subscriptions.missing(), []);
});

t.test('at most one command per channel in flight; the loop follows the latest state', async (t) => {
  const { subscriptions, want, log, reply } = setUp();
  want('a', 1);
  void subscriptions.reconcile('a');
  want('a', -1);
  void subscriptions.reconcile('a');
  want('a', 1);
  void subscriptions.reconcile('a');
  want('a', -1);
  void subscriptions.reconcile('a');
  await drain();
  t.same(log(), ['+a'], 'nothing more while the SUBSCRIBE is out');
  await reply(0);
  t.same(log(), ['+a', '-a'], 'then the UNSUBSCRIBE the listeners now call for');
  t.equal(subscriptions.size(), 1, 'tracked while the broker may hold it');
  await reply(1);
  t.same(subscriptions.held(), []);
  t.equal(subscriptions.size(), 0, 'unwanted and not held: forgotten');
});

t.test('wanted again before an UNSUBSCRIBE returns: subscribed again afterwards', async (t) => {
  const { subscriptions, want, log, reply } = setUp();
  want('a', 1);
  const first = subscriptions.hold('a', () => true);
  await reply(0);
  t.equal(await first, true);
  want('a', -1);
  void subscriptions.reconcile('a');
  want('a', 1);
  const second = subscriptions.hold('a', () => true);
  await drain();
  t.same(log(), ['+a', '-a']);
  await reply(1);
  t.same(log(), ['+a', '-a', '+a']);
  await reply(2);
  t.equal(await second, true);
  t.same(subscriptions.held(), ['a']);
});

t.test('unwanted and wanted again while a SUBSCRIBE is out: no extra command', async (t) => {
  const { subscriptions, want, log, reply } = setUp();
  want('a', 1);
  const held = subscriptions.hold('a', () => true);
  want('a', -1);
  void subscriptions.reconcile('a');
  want('a', 1);
  await reply(0);
  t.equal(await held, true);
  t.same(log(), ['+a']);
});

t.test('hold does not report a channel held for an attachment that has gone', async (t) => {
  const { subscriptions, want, log, reply } = setUp();
  want('a', 1);
  let attached = true;
  const held = subscriptions.hold('a', () => attached);
  attached = false;
  want('a', -1);
  await reply(0);
  t.same(log(), ['+a', '-a'], 'the loop goes on to unsubscribe');
  await reply(1);
  t.equal(await held, false, 'the loop stopped without holding it for us');
});

t.test('a failed command leaves the channel unknown until a resync succeeds', async (t) => {
  const { subscriptions, want, log, reply } = setUp();
  want('a', 1);
  const held = subscriptions.hold('a', () => true);
  const refused = new Error('refused');
  await reply(0, refused);
  t.equal(await held, false);
  t.equal(subscriptions.lastError('a'), refused);
  t.same(subscriptions.missing(), [{ channel: 'a', lastError: refused }]);
  t.same(subscriptions.held(), []);
  t.equal(subscriptions.size(), 1, 'the broker may hold it: still tracked');

  subscriptions.resync();
  await drain();
  t.same(log(), ['+a', '+a'], 'a resync tries again');
  subscriptions.resync();
  await drain();
  t.equal(log().length, 2, 'a resync leaves a running loop alone');
  await reply(1);
  t.same(subscriptions.held(), ['a']);
  t.equal(subscriptions.lastError('a'), undefined, 'a success clears the error');
  t.same(subscriptions.missing(), []);
});

t.test('a client known to be down: the loop stops at once, nothing sent', async (t) => {
  const { subscriptions, state, want, log } = setUp();
  const down = new Error('down');
  state.down = down;
  want('a', 1);
  const stopped = subscriptions.reconcile('a');
  let settled = false;
  void subscriptions.settled().then(() => (settled = true));
  await stopped;
  await drain();
  t.ok(settled, 'no loop left running');
  t.same(log(), []);
  t.equal(subscriptions.lastError('a'), down);
  t.equal(await subscriptions.hold('a', () => true), false, 'hold reports the failure');
});

t.test('a reply from a replaced client counts for nothing: the loop asks the new one', async (t) => {
  const { subscriptions, state, want, log, reply } = setUp();
  want('a', 1);
  const held = subscriptions.hold('a', () => true);
  await drain();
  state.generation++;
  await reply(0);
  t.same(log(), ['+a', '+a'], 'sent again, on the new client');
  t.same(subscriptions.held(), [], 'not known to be held by the new client yet');
  await reply(1);
  t.equal(await held, true);
  t.same(subscriptions.held(), ['a']);
});

t.test('a reply from a replaced client while the new one is not up yet: unknown until a resync', async (t) => {
  const { subscriptions, state, want, log, reply } = setUp();
  want('a', 1);
  const held = subscriptions.hold('a', () => true);
  await drain();
  state.generation++;
  state.down = new Error('connecting');
  await reply(0);
  t.equal(await held, false);
  t.same(subscriptions.missing(), [{ channel: 'a', lastError: state.down }]);
  state.down = undefined;
  subscriptions.resync();
  await reply(1);
  t.same(log(), ['+a', '+a']);
  t.same(subscriptions.held(), ['a']);
});

t.test('a lost connection makes what it held unknown', async (t) => {
  const { subscriptions, want, log, reply } = setUp();
  want('a', 1);
  want('b', 1);
  void subscriptions.reconcile('a');
  void subscriptions.reconcile('b');
  await reply(0);
  await reply(1);
  t.same(subscriptions.held(), ['a', 'b']);
  subscriptions.connectionLost();
  t.same(subscriptions.held(), []);
  t.equal(subscriptions.missing().length, 2);
  subscriptions.resync();
  await drain();
  t.same(log(), ['+a', '+b', '+a', '+b'], 'a resync subscribes both again');
});

t.test('a replacement connection: idle channels are off, unwanted ones forgotten, busy ones left alone', async (t) => {
  const { subscriptions, want, log, reply } = setUp();
  for (const channel of ['idle', 'gone', 'leaving']) {
    want(channel, 1);
    void subscriptions.reconcile(channel);
  }
  await reply(0);
  await reply(1);
  await reply(2);
  want('gone', -1);
  void subscriptions.reconcile('gone');
  await reply(3, new Error('failed')); // UNSUBSCRIBE of `gone` failed: the broker may still hold it
  t.equal(subscriptions.size(), 3);
  want('leaving', -1);
  void subscriptions.reconcile('leaving');
  want('joining', 1);
  void subscriptions.reconcile('joining');
  await drain();
  t.same(log(), ['+idle', '+gone', '+leaving', '-gone', '-leaving', '+joining']);

  subscriptions.connectionReplaced();
  t.same(subscriptions.held(), ['leaving'], 'idle ones hold nothing now; the busy one keeps what its loop knows');
  t.same(subscriptions.missing().map((entry) => entry.channel), ['idle', 'joining']);
  t.equal(subscriptions.size(), 3, '`gone` is forgotten');
  await reply(4);
  await reply(5);
  t.same(subscriptions.held(), ['joining'], 'the commands in flight went out on the new connection');
  t.equal(subscriptions.size(), 2, '`leaving` is forgotten once its UNSUBSCRIBE is back');
});

t.test('settled waits for every loop, including loops started while waiting', async (t) => {
  const { subscriptions, want, reply } = setUp();
  want('a', 1);
  void subscriptions.reconcile('a');
  let settled = false;
  void subscriptions.settled().then(() => (settled = true));
  want('b', 1);
  void subscriptions.reconcile('b');
  await reply(0);
  t.notOk(settled, '`b` is still out');
  await reply(1);
  t.ok(settled);
});

t.test('once closed, loops stop and hold reports false', async (t) => {
  const { subscriptions, state, want, log, reply } = setUp();
  want('a', 1);
  const held = subscriptions.hold('a', () => true);
  await drain();
  state.closed = true;
  want('a', -1);
  await reply(0);
  t.equal(await held, false);
  t.same(log(), ['+a'], 'no UNSUBSCRIBE after close');
  subscriptions.clear();
  t.equal(subscriptions.size(), 0);
});
