/**
 * Child processes that cannot outlive the bench. Each runs behind a tiny `sh` watchdog that
 * holds the read end of a pipe whose write end only this process has: if the bench dies
 * without cleaning up (SIGKILL, crash), the pipe reaches EOF and the watchdog SIGKILLs the
 * child. `exec` turns the shell into the command itself, so the pid we hold (and measure) is
 * the real process, never a wrapper. Children lead their own process group, so a Ctrl-C at
 * the terminal reaches only the bench, which then stops them in order.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import type { Writable } from 'node:stream';
import { onCleanup } from './cleanup.js';

/** `$$` in the subshell is the outer shell, which `exec` replaces with the command. */
const WATCHDOG = '(read -r line <&3; [ "$line" = exited ] || kill -9 $$) 2>/dev/null & exec "$0" "$@"';

export interface Guarded {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or the signal name) once the process is gone. */
  readonly exited: Promise<number | string>;
  readonly alive: boolean;
  /** SIGTERM, then SIGKILL after `graceMs`. Idempotent. */
  stop(graceMs: number): Promise<void>;
  /** The last lines of its log, for error messages. */
  logTail(lines?: number): string;
}

const live = new Set<Guarded>();

export interface SpawnOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  logFile: string;
}

export function spawnGuarded(name: string, command: string, args: string[], options: SpawnOptions): Guarded {
  const logFd = openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn('/bin/sh', ['-c', WATCHDOG, command, ...args], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', logFd, logFd, 'pipe'],
      detached: true,
    });
  } finally {
    closeSync(logFd);
  }
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const pid = child.pid;
  const guard = child.stdio[3] as Writable;
  guard.on('error', () => {}); // the watchdog may be gone already: nothing to tell it then
  let alive = true;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      alive = false;
      // Tell the watchdog the process ended normally (its pid may be reused from now on).
      guard.end('exited\n');
      live.delete(handle);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  let stopping: Promise<void> | undefined;
  const handle: Guarded = {
    name,
    pid,
    logFile: options.logFile,
    exited,
    get alive() {
      return alive;
    },
    stop(graceMs) {
      stopping ??= (async () => {
        if (!alive) return;
        signal(pid, 'SIGTERM');
        const ended = await Promise.race([exited.then(() => true), delay(graceMs, false)]);
        if (!ended) {
          signal(pid, 'SIGKILL');
          await Promise.race([exited, delay(5000)]);
        }
      })();
      return stopping;
    },
    logTail(lines = 20) {
      try {
        return readFileSync(options.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
  };
  live.add(handle);
  return handle;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** Last resort (second Ctrl-C): SIGKILL every child still running, synchronously. */
export function killAllNow(): void {
  for (const handle of live) signal(handle.pid, 'SIGKILL');
}

/** Resident set size of a process (VmRSS, kB), from /proc/PID/status. */
export function rssKb(pid: number): number {
  return memoryKb(pid).rss;
}

/** VmRSS and its anonymous (heap, stacks) and file-backed (code, mapped files) parts, in kB. */
export function memoryKb(pid: number): { rss: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`no ${name} for pid ${pid}`);
    return Number(match[1]);
  };
  return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') };
}

/**
 * Runs a command to completion (its output goes to our stderr), bounded by `timeoutMs`. It
 * leads its own process group, which is killed if the bench is interrupted meanwhile.
 */
export async function runToCompletion(command: string, args: string[], cwd: string, timeoutMs: number): Promise<void> {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 2, 2], detached: true });
  const killGroup = (): void => {
    try {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const release = onCleanup(`${command} ${args.join(' ')}`, async () => killGroup());
  const timer = setTimeout(killGroup, timeoutMs);
  try {
    const [code, sig] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c, s) => resolve([c, s]));
    });
    if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${code ?? sig})`);
  } finally {
    clearTimeout(timer);
    await release();
  }
}
