/**
 * `npm run bench`: the project's own multi-replica measurements. Starts what it needs on
 * loopback (a bench_<random> database, a redis-server, two replicas of dist/server.js per
 * workload), runs the chosen workloads, stops everything, and prints one JSON report on
 * stdout. Progress goes to stderr. `npm run bench -- --help` lists the options.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage, log } from './lib/log.js';
import { type Options, parseOptions, USAGE, UsageError, type Workload } from './lib/options.js';
import { ensureBuilt } from './stack/build.js';
import { cleanupAll } from './stack/cleanup.js';
import { killAllNow } from './stack/processes.js';
import { startRedis } from './stack/redis.js';
import type { StackContext } from './stack/stack.js';
import { crowdWorkload } from './workloads/crowd.js';
import { fanoutWorkload } from './workloads/fanout.js';
import { historyWorkload } from './workloads/history.js';
import { idleWorkload } from './workloads/idle.js';
import { inboxWorkload } from './workloads/inbox.js';
import { searchWorkload } from './workloads/search.js';
import { soakWorkload } from './workloads/soak.js';
import { uploadWorkload } from './workloads/upload.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

type Report = {
  node: string;
  date: string;
  machine: { cpus: number; loadavg_1m_at_start: number };
  options: Omit<Options, 'only'> & { only: string };
} & Partial<Record<Workload, unknown>>;

function runWorkload(workload: Workload, context: StackContext | null, options: Options): Promise<unknown> {
  if (workload === 'upload') return uploadWorkload(options.uploadMb);
  if (!context) throw new Error('no stack context');
  if (workload === 'fanout') return fanoutWorkload(context, options);
  if (workload === 'idle') return idleWorkload(context, options);
  if (workload === 'soak') return soakWorkload(context, options);
  if (workload === 'inbox') return inboxWorkload(context, options);
  if (workload === 'search') return searchWorkload(context, options);
  if (workload === 'crowd') return crowdWorkload(context, options);
  return historyWorkload(context, options);
}

/** Set on SIGINT/SIGTERM: the handler cleans up and exits 130; the main flow stands down. */
let interrupted = false;

function installSignalHandlers(runDir: string): void {
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      log(`${signal} again: killing children now`);
      killAllNow();
      process.exit(130);
    }
    interrupted = true;
    log(`${signal}: stopping replicas and Redis, dropping the database (signal again to kill at once); no report`);
    void cleanupAll().finally(() => {
      log(`logs kept in ${runDir}`);
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

async function main(): Promise<number | null> {
  let options: Options | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n${USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    process.stderr.write(`${USAGE}\n`);
    return 0;
  }
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 24) log(`warning: running on Node ${process.version}; the service expects >= 24 (npm run bench uses the project's own node)`);

  const runDir = mkdtempSync(join(tmpdir(), 'chat-bench-'));
  installSignalHandlers(runDir);
  const { only, ...rest } = options;
  const report: Report = {
    node: process.version,
    date: new Date().toISOString(),
    machine: { cpus: availableParallelism(), loadavg_1m_at_start: Math.round(loadavg()[0]! * 100) / 100 },
    options: { only: only.join(','), ...rest },
  };
  let failed = false;
  try {
    let context: StackContext | null = null;
    if (only.some((w) => w !== 'upload')) {
      await ensureBuilt(ROOT);
      const redis = await startRedis(runDir);
      context = { root: ROOT, runDir, redisUrl: redis.url };
    }
    for (const workload of only) {
      if (interrupted) break;
      const started = Date.now();
      log(`=== ${workload}`);
      try {
        report[workload] = await runWorkload(workload, context, options);
      } catch (error) {
        failed = true;
        if (interrupted) break;
        log(`${workload} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
        report[workload] = { error: errorMessage(error) };
      }
      log(`=== ${workload} done in ${Math.round((Date.now() - started) / 1000)} s`);
    }
  } catch (error) {
    failed = true;
    if (!interrupted) log(`set-up failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    (report as Record<string, unknown>).error = errorMessage(error);
  } finally {
    await cleanupAll();
    if (failed || interrupted) log(`replica and Redis logs kept in ${runDir}`);
    else rmSync(runDir, { recursive: true, force: true });
  }
  if (interrupted) return null; // the signal handler exits with 130
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    if (code !== null) process.exit(code);
  },
  async (error: unknown) => {
    log(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await cleanupAll();
    process.exit(1);
  },
);
