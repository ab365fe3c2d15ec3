/**
 * The soak workload's pure parts (bench/lib/timeline.ts, bench/lib/text-chart.ts, its
 * options): windows by due time, the derived checks, the sparkline and the table.
 */
import t from 'tap';
import { parseOptions } from '../bench/lib/options.js';
import { alignTable, sparkline } from '../bench/lib/text-chart.js';
import { createTimeline, soakChecks } from '../bench/lib/timeline.js';

t.test('timeline: sends and deliveries land in the window their message was due in', async (t) => {
  const timeline = createTimeline(25_000, 10_000);
  t.same(timeline.endsMs, [10_000, 20_000, 25_000], 'the last window ends with the run');
  timeline.sent(0, 2);
  timeline.sent(9_999, 4);
  timeline.sent(10_000, 3);
  timeline.sent(24_999, 2);
  // Delivered after the window closed: still counted where the message was due.
  for (const latency of [5, 1, 3, 2]) timeline.delivered(9_999, latency);
  timeline.delivered(0, 1000);
  timeline.delivered(10_000, 7);
  const [w0, w1, w2] = timeline.windows();
  t.match(w0, { start_s: 0, end_s: 10, sent: 2, expected: 6, delivered: 5, p50_ms: 3, p99_ms: 1000, max_ms: 1000 });
  t.match(w1, { start_s: 10, end_s: 20, sent: 1, expected: 3, delivered: 1, p50_ms: 7, p99_ms: 7, max_ms: 7 });
  t.match(w2, { start_s: 20, end_s: 25, sent: 1, expected: 2, delivered: 0, p50_ms: null, p99_ms: null, max_ms: null });
});

t.test('timeline: offsets outside the run are clamped to its first and last windows', async (t) => {
  const timeline = createTimeline(20_000, 10_000);
  timeline.sent(-3, 1);
  timeline.sent(20_000, 1);
  t.same(
    timeline.windows().map((w) => w.sent),
    [1, 1],
  );
  t.throws(() => createTimeline(0, 10_000));
});

const win = (end_s: number, p99_ms: number | null, rss_kb: (number | null)[]) => ({ end_s, p99_ms, rss_kb });

t.test('checks: p99 ratio of last to first window, RSS growth since the end of the first minute', async (t) => {
  const windows = [10, 20, 30, 40, 50, 60, 70, 80].map((end, i) => win(end, 10 + i, [100_000 + i * 1000, 200_000 - i * 500]));
  const checks = soakChecks(windows);
  t.equal(checks.p99_last_over_first, 1.7);
  t.same(checks.rss_growth, [
    { baseline_s: 60, baseline_kb: 105_000, end_kb: 107_000, growth_kb: 2000 },
    { baseline_s: 60, baseline_kb: 197_500, end_kb: 196_500, growth_kb: -1000 },
  ]);
});

t.test('checks: a run not longer than a minute takes its baseline from the first window', async (t) => {
  const upToMinute = soakChecks([10, 20, 30, 40, 50, 60].map((end, i) => win(end, 5, [1000 + i, null])));
  t.same(upToMinute.rss_growth, [
    { baseline_s: 10, baseline_kb: 1000, end_kb: 1005, growth_kb: 5 },
    { baseline_s: 10, baseline_kb: null, end_kb: null, growth_kb: null },
  ]);
  t.equal(soakChecks([win(10, null, [1]), win(20, 4, [2])]).p99_last_over_first, null, 'no deliveries in the first window');
  t.same(soakChecks([]), { p99_last_over_first: null, rss_growth: [] });
});

t.test('sparkline: one character per value, scaled from zero to the largest', async (t) => {
  t.equal(sparkline([0, 1, 2, 4, 8, null, 7.9]), '▁▂▃▅█ █');
  t.equal(sparkline([0, 0]), '▁▁');
  t.equal(sparkline([]), '');
});

t.test('alignTable: columns right-aligned to their widest cell', async (t) => {
  t.equal(alignTable(['a', 'bbb'], [['10', '1'], ['2', '22']]), ' a  bbb\n10    1\n 2   22');
});

t.test('options: soak runs only when named, with its own rate and duration', async (t) => {
  const defaults = parseOptions([]);
  if (defaults === 'help') throw new Error('unexpected help');
  t.same(defaults.only, ['fanout', 'idle', 'history', 'upload']);
  t.match(defaults, { soakRate: 500, soakDurationS: 600, durationS: 10 });
  const soak = parseOptions(['--only', 'soak', '--soak-rate', '200', '--soak-duration', '40']);
  t.match(soak, { only: ['soak'], soakRate: 200, soakDurationS: 40 });
  t.throws(() => parseOptions(['--only', 'soak', '--soak-rate', '0']), { name: 'UsageError' });
});
