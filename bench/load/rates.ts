/** Request rates of a GET, measured with autocannon on every replica at once (inbox, search). */
import autocannon from 'autocannon';
import type { Options } from '../lib/options.js';
import { round } from '../lib/stats.js';

export interface Rate {
  req_per_s: number;
  p50_ms: number;
  p99_ms: number;
  non2xx: number;
  errors: number;
}

/** autocannon on every replica at once for `durationS`; rates summed, the worse p50 and p99. */
export async function measure(urls: string[], path: string, token: string, options: Options): Promise<Rate> {
  const results = await Promise.all(
    urls.map((url) =>
      autocannon({ url: url + path, connections: options.connections, duration: options.durationS, headers: { authorization: `Bearer ${token}` } }),
    ),
  );
  return {
    req_per_s: round(results.reduce((a, r) => a + r.requests.average, 0)) ?? 0,
    p50_ms: Math.max(...results.map((r) => r.latency.p50)),
    p99_ms: Math.max(...results.map((r) => r.latency.p99)),
    non2xx: results.reduce((a, r) => a + r.non2xx, 0),
    errors: results.reduce((a, r) => a + r.errors, 0),
  };
}

/** Two measurements of the same thing: rates averaged, the worse latencies, errors summed. */
export const mean = (a: Rate, b: Rate): Rate => ({
  req_per_s: round((a.req_per_s + b.req_per_s) / 2) ?? 0,
  p50_ms: Math.max(a.p50_ms, b.p50_ms),
  p99_ms: Math.max(a.p99_ms, b.p99_ms),
  non2xx: a.non2xx + b.non2xx,
  errors: a.errors + b.errors,
});

/** b / a request rates, to three places (0 when a measured nothing). */
export const rateRatio = (b: Rate, a: Rate): number => round(a.req_per_s > 0 ? b.req_per_s / a.req_per_s : 0, 3) ?? 0;
