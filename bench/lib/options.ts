/** The command line of `npm run bench -- [options]`. */
import { parseArgs } from 'node:util';

export const WORKLOADS = ['fanout', 'idle', 'history', 'upload', 'soak', 'inbox', 'search', 'crowd'] as const;
export type Workload = (typeof WORKLOADS)[number];
/**
 * What runs without --only: the soak takes ten minutes, so it is asked for by name (the inbox
 * too: it seeds 2,000 conversations; search: a million messages; crowd: a thousand accounts).
 */
export const DEFAULT_WORKLOADS: readonly Workload[] = ['fanout', 'idle', 'history', 'upload'];

export interface Options {
  only: Workload[];
  /** fanout step mode: rates tried in order (msg/s). */
  rates: number[];
  /** Seconds per fanout run (steady and each step) and for the history reads. */
  durationS: number;
  /** fanout: the steady rate whose p50/p99 are reported. */
  rate: number;
  /** idle: sockets opened on replica 1. */
  n: number;
  users: number;
  conversations: number;
  p99LimitMs: number;
  refine: number;
  /** history: concurrent connections per replica. */
  connections: number;
  uploadMb: number;
  /** soak: the sustained fan-out rate (msg/s) and how long it is held (s). */
  soakRate: number;
  /** crowd: members (sockets) of the big conversation, and its message rate (msg/s). */
  crowdMembers: number;
  crowdRate: number;
  soakDurationS: number;
  /** search: messages of the big history (the small one has a hundredth), over `searchConversations` conversations each. */
  searchMessages: number;
  searchConversations: number;
}

export const USAGE = `usage: npm run bench -- [options]   (one JSON report on stdout, progress on stderr)
  --only LIST          workloads, comma separated [fanout,idle,history,upload]; soak, inbox, search and crowd only when named
  --rates LIST         fanout step rates, msg/s [250,500,1000,1500,2000,2500,3000,4000,5000,6000]
  --rate R             fanout steady rate for p50/p99, msg/s [50]
  --duration S         seconds per fanout run (steady, each step) and of the history and inbox reads [10]
  --n N                idle: sockets opened on replica 1 [2000]
  --users U            fanout/idle/soak users [200]
  --conversations C    fanout/idle/soak conversations, sizes cycling 2,3,4 [100]
  --p99 MS             step: a step fails above this p99 (or on any loss) [100]
  --refine K           step: bisections after the first failed rate [2]
  --connections N      history, inbox: connections per replica [10]
  --upload-mb MB       upload: file size passed to measureUploadMemory [500]
  --soak-rate R        soak: sustained fan-out rate, msg/s [500]
  --soak-duration S    soak: seconds the rate is held, reported in 10 s windows [600]
  --crowd-members N    crowd: members (a socket each) of the big conversation [1000]
  --crowd-rate R       crowd: its messages/s while the small ones take --rate [20]
  --search-messages N  search: messages of the big history; the small one has N/100 [1000000]
  --search-conversations C  search: conversations each history is spread over [1000]
Environment: BENCH_PG_URL [postgres://postgres@127.0.0.1:5432/postgres] (admin URL; a bench_<random>
database is created on that server and dropped at the end), BENCH_REDIS_URL (use this Redis instead
of starting a redis-server on a free loopback port).`;

export class UsageError extends Error {
  override name = 'UsageError';
}

const int = (name: string, raw: string, min: number): number => {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new UsageError(`--${name}: an integer >= ${min} (got ${JSON.stringify(raw)})`);
  return value;
};

const positive = (name: string, raw: string): number => {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`--${name}: a positive number (got ${JSON.stringify(raw)})`);
  return value;
};

const list = (raw: string): string[] => raw.split(/[\s,]+/).filter(Boolean);

export function parseOptions(argv: string[]): Options | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        only: { type: 'string', default: DEFAULT_WORKLOADS.join(',') },
        rates: { type: 'string', default: '250,500,1000,1500,2000,2500,3000,4000,5000,6000' },
        rate: { type: 'string', default: '50' },
        duration: { type: 'string', default: '10' },
        n: { type: 'string', default: '2000' },
        users: { type: 'string', default: '200' },
        conversations: { type: 'string', default: '100' },
        p99: { type: 'string', default: '100' },
        refine: { type: 'string', default: '2' },
        connections: { type: 'string', default: '10' },
        'upload-mb': { type: 'string', default: '500' },
        'soak-rate': { type: 'string', default: '500' },
        'soak-duration': { type: 'string', default: '600' },
        'crowd-members': { type: 'string', default: '1000' },
        'crowd-rate': { type: 'string', default: '20' },
        'search-messages': { type: 'string', default: '1000000' },
        'search-conversations': { type: 'string', default: '1000' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const v = parsed.values;
  if (v.help) return 'help';
  const only = list(v.only);
  for (const name of only) {
    if (!(WORKLOADS as readonly string[]).includes(name)) throw new UsageError(`--only: unknown workload ${JSON.stringify(name)} (${WORKLOADS.join(', ')})`);
  }
  if (only.length === 0) throw new UsageError('--only: at least one workload');
  const rates = list(v.rates).map((r) => positive('rates', r));
  if (rates.length === 0) throw new UsageError('--rates: at least one rate');
  const users = int('users', v.users, 4);
  return {
    only: WORKLOADS.filter((w) => only.includes(w)),
    rates,
    rate: positive('rate', v.rate),
    durationS: positive('duration', v.duration),
    n: int('n', v.n, 1),
    users,
    conversations: int('conversations', v.conversations, 1),
    p99LimitMs: positive('p99', v.p99),
    refine: int('refine', v.refine, 0),
    connections: int('connections', v.connections, 1),
    uploadMb: positive('upload-mb', v['upload-mb']),
    soakRate: positive('soak-rate', v['soak-rate']),
    soakDurationS: positive('soak-duration', v['soak-duration']),
    crowdMembers: int('crowd-members', v['crowd-members'], 2),
    crowdRate: positive('crowd-rate', v['crowd-rate']),
    searchMessages: int('search-messages', v['search-messages'], 100),
    searchConversations: int('search-conversations', v['search-conversations'], 1),
  };
}
