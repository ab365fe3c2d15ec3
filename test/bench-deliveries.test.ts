/**
 * The load generator's delivery bookkeeping (bench/load/deliveries.ts) and the crowd
 * workload's options: a conversation of a thousand members must count a thousand first
 * deliveries per message, not alias members 32 apart onto one bit.
 */
import t from 'tap';
import { DeliverySet, slotsOf } from '../bench/load/deliveries.js';
import { parseOptions } from '../bench/lib/options.js';

t.test('deliveries: every (message, slot) pair is its own first delivery, a second mark is a duplicate', async (t) => {
  const set = new DeliverySet(3, 1000);
  let firsts = 0;
  for (let message = 0; message < 3; message++) for (let slot = 0; slot < 1000; slot++) if (set.mark(message, slot)) firsts++;
  t.equal(firsts, 3000, 'slots 0, 32, 64... of one message are distinct recipients');
  t.notOk(set.mark(2, 999), 'the same pair again');
  t.notOk(set.mark(0, 32));
  const fresh = new DeliverySet(2, 33);
  t.ok(fresh.mark(0, 32));
  t.ok(fresh.mark(0, 0), 'slot 0 is not slot 32');
  t.ok(fresh.mark(1, 0), 'message 1 slot 0 is not message 0 slot 33');
});

t.test('deliveries: pairs outside the run are not held', async (t) => {
  const set = new DeliverySet(10, 4);
  t.ok(set.holds(9, 3));
  for (const [message, slot] of [[10, 0], [-1, 0], [0, 4], [0, -1], [1.5, 0], [Number.NaN, 0]] as const) {
    t.notOk(set.holds(message, slot), `${message}, ${slot}`);
  }
  t.throws(() => new DeliverySet(1, 0), RangeError);
  t.throws(() => new DeliverySet(-1, 3), RangeError);
});

t.test('deliveries: the slot count covers the largest conversation of the run', async (t) => {
  const small = { members: [1, 2, 3] };
  const big = { members: Array.from({ length: 1000 }, (_, i) => i) };
  t.equal(slotsOf([{ slot: 0, conversation: small }, { slot: 2, conversation: small }]), 3);
  t.equal(slotsOf([{ slot: 1, conversation: small }, { slot: 5, conversation: big }]), 1000);
  t.equal(slotsOf([]), 1);
});

t.test('options: crowd runs only when named, with its own size and rate', async (t) => {
  const defaults = parseOptions([]);
  if (defaults === 'help') throw new Error('unexpected help');
  t.notOk(defaults.only.includes('crowd'), 'a thousand accounts: not by default');
  t.match(defaults, { crowdMembers: 1000, crowdRate: 20 });
  t.match(parseOptions(['--only', 'crowd', '--crowd-members', '40', '--crowd-rate', '5']), { only: ['crowd'], crowdMembers: 40, crowdRate: 5 });
  t.throws(() => parseOptions(['--only', 'crowd', '--crowd-members', '1']), { name: 'UsageError' });
  t.throws(() => parseOptions(['--only', 'crowd', '--crowd-rate', '0']), { name: 'UsageError' });
});
