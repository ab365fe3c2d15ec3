/**
 * The local listener bookkeeping both buses share (src/bus/listener-registry.ts): pure logic, so
 * it runs without a broker, with an injected queue for the asynchronous rethrow.
 */
import { setImmediate as drain } from 'node:timers/promises';
import t from 'tap';
import type { BusLogger } from '../src/bus/bus.js';
import { createListenerRegistry } from '../src/bus/listener-registry.js';

/** A logger that keeps what it is told. */
function recordingLogger(): BusLogger & { warnings: { obj: unknown; msg: string | undefined }[] } {
  const warnings: { obj: unknown; msg: string | undefined }[] = [];
  return {
    warnings,
    warn: (obj, msg) => warnings.push({ obj, msg }),
    info() {},
  };
}

t.test('a channel is listed exactly while it has a listener', async (t) => {
  const registry = createListenerRegistry();
  t.notOk(registry.has('a'));
  const first = registry.attach('a', () => {});
  const second = registry.attach('a', () => {});
  registry.attach('b', () => {});
  t.same(registry.channels(), ['a', 'b']);
  t.ok(first.detach());
  t.ok(registry.has('a'), 'one listener left');
  t.ok(second.detach());
  t.notOk(registry.has('a'), 'the last detach drops the channel');
  t.same(registry.channels(), ['b']);
});

t.test('each attach is distinct; detach is idempotent', async (t) => {
  const registry = createListenerRegistry();
  const got: string[] = [];
  const listener = (payload: string): void => {
    got.push(payload);
  };
  const first = registry.attach('a', listener);
  const second = registry.attach('a', listener);
  registry.dispatch('a', 'twice');
  t.same(got, ['twice', 'twice'], 'the same function attached twice counts twice');

  t.equal(first.detach(), true, 'the first detach removes it');
  t.equal(first.detach(), false, 'a second detach does nothing');
  t.notOk(first.isAttached());
  t.ok(second.isAttached(), "a repeated detach does not take the other attachment's place");
  registry.dispatch('a', 'once');
  t.same(got, ['twice', 'twice', 'once']);
});

t.test('a stale attachment does not touch the channel attached again after it', async (t) => {
  const registry = createListenerRegistry();
  const old = registry.attach('a', () => {});
  old.detach();
  const fresh = registry.attach('a', () => {});
  t.equal(old.detach(), false);
  t.notOk(old.isAttached());
  t.ok(fresh.isAttached());
  t.ok(registry.has('a'));
});

t.test('dispatch goes to the listeners of that channel, in attach order', async (t) => {
  const registry = createListenerRegistry();
  const got: string[] = [];
  registry.attach('a', (payload) => got.push(`1:${payload}`));
  registry.attach('b', (payload) => got.push(`b:${payload}`));
  registry.attach('a', (payload) => got.push(`2:${payload}`));
  t.equal(registry.dispatch('a', 'x'), true);
  t.equal(registry.dispatch('none', 'y'), false, 'no listener: nothing delivered');
  t.same(got, ['1:x', '2:x']);
});

t.test('a listener detached by an earlier one in the same delivery is skipped', async (t) => {
  const registry = createListenerRegistry();
  const got: string[] = [];
  const attachments: { detach(): boolean }[] = [];
  registry.attach('a', (payload) => {
    got.push(`first:${payload}`);
    attachments[0]?.detach();
  });
  attachments.push(registry.attach('a', (payload) => got.push(`second:${payload}`)));
  registry.attach('a', (payload) => got.push(`third:${payload}`));
  registry.dispatch('a', 'x');
  t.same(got, ['first:x', 'third:x']);
});

t.test('a listener attached during a delivery waits for the next payload', async (t) => {
  const registry = createListenerRegistry();
  const got: string[] = [];
  let attached = false;
  registry.attach('a', (payload) => {
    got.push(`first:${payload}`);
    if (!attached) {
      attached = true;
      registry.attach('a', (later) => got.push(`late:${later}`));
    }
  });
  registry.dispatch('a', 'x');
  registry.dispatch('a', 'y');
  t.same(got, ['first:x', 'first:y', 'late:y']);
});

t.test('a snapshot delivers later to the listeners still attached then', async (t) => {
  const registry = createListenerRegistry();
  const got: string[] = [];
  const leaving = registry.attach('a', (payload) => got.push(`leaving:${payload}`));
  registry.attach('a', (payload) => got.push(`staying:${payload}`));
  const targets = registry.snapshot('a');
  registry.attach('a', (payload) => got.push(`late:${payload}`));
  leaving.detach();
  registry.deliver(targets, 'x');
  t.same(got, ['staying:x'], 'neither the detached one nor the one attached after the snapshot');
  t.same(registry.snapshot('none'), []);
});

t.test('clear forgets the channels; earlier attachments keep their own state', async (t) => {
  const registry = createListenerRegistry();
  const got: string[] = [];
  const kept = registry.attach('a', (payload) => got.push(`kept:${payload}`));
  const gone = registry.attach('a', (payload) => got.push(`gone:${payload}`));
  const targets = registry.snapshot('a');
  registry.clear();
  t.same(registry.channels(), []);
  t.notOk(registry.has('a'));
  t.equal(registry.dispatch('a', 'after'), false, 'nothing is dispatched after clear');
  t.equal(gone.detach(), true, 'a detach after clear is harmless');
  t.notOk(registry.has('a'), 'and lists nothing again');
  registry.deliver(targets, 'snapshotted');
  t.same(got, ['kept:snapshotted'], 'a snapshot taken before still reaches the listener not detached');
  t.ok(kept.isAttached());
});

t.test('a throwing listener is logged and the others still get the payload', async (t) => {
  const logger = recordingLogger();
  const registry = createListenerRegistry({ logger, defer: () => t.fail('nothing is rethrown with a logger') });
  const got: string[] = [];
  const boom = new Error('boom');
  registry.attach('a', () => {
    throw boom;
  });
  registry.attach('a', (payload) => got.push(payload));
  registry.dispatch('a', 'x');
  t.same(got, ['x']);
  t.same(logger.warnings, [{ obj: { err: boom, channel: 'a' }, msg: 'bus listener threw' }]);
});

t.test('without a logger, a listener error is rethrown after the delivery', async (t) => {
  const deferred: (() => void)[] = [];
  const registry = createListenerRegistry({ defer: (task) => deferred.push(task) });
  const got: string[] = [];
  const first = new Error('first');
  const second = new Error('second');
  registry.attach('a', () => {
    throw first;
  });
  registry.attach('a', (payload) => got.push(payload));
  registry.attach('a', () => {
    throw second;
  });
  registry.dispatch('a', 'x');
  t.same(got, ['x'], 'the listener between them got the payload');
  t.equal(deferred.length, 2, 'one rethrow per error, none during the delivery');
  t.throws(() => deferred[0]?.(), first);
  t.throws(() => deferred[1]?.(), second);
});

t.test('by default the rethrow is queued as a microtask, not thrown to the dispatcher', async (t) => {
  const registry = createListenerRegistry();
  const boom = new Error('boom');
  registry.attach('a', () => {
    throw boom;
  });
  // Catch the rethrow where the default queue sends it: an uncaught exception from a microtask,
  // which has run by the next macrotask turn.
  const others = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  const caught: unknown[] = [];
  process.on('uncaughtException', (err) => caught.push(err));
  try {
    t.doesNotThrow(() => registry.dispatch('a', 'x'), 'not thrown to the dispatcher');
    t.same(caught, [], 'not yet');
    await drain();
  } finally {
    process.removeAllListeners('uncaughtException');
    for (const listener of others) process.on('uncaughtException', listener);
  }
  t.same(caught, [boom], 'rethrown once the delivery is over');
});
