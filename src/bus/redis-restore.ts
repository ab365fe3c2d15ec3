import type { BusLogger } from './bus.js';

/** Time for the restore's retries; tests pass a fake one. */
export interface RestoreClock {
  now(): number;
  /** Runs `task` after `ms` without keeping the process alive; returns a function that cancels it. */
  later(task: () => void, ms: number): () => void;
}

export const systemClock: RestoreClock = {
  now: () => Date.now(),
  later(task, ms) {
    const timer = setTimeout(task, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/** While a restore cannot complete it is tried again this often, besides on each sign of recovery. */
export const RETRY_RESTORE_MS = 1_000;

export interface RestorerOptions {
  /**
   * One try at bringing every subscription back. `stale()` turns true once the connection has
   * been lost again since the try began: a stale try must report false.
   */
  attempt(stale: () => boolean): Promise<boolean>;
  isClosed(): boolean;
  log: BusLogger;
  /** For the log lines. */
  clustered: boolean;
  /** For the "restored" log line. */
  channelCount(): number;
  /** When restores keep failing for longer than `afterMs`, `replace()` (then the count starts over). */
  stuck?: { afterMs: number; replace(): void } | undefined;
  clock?: RestoreClock;
  retryMs?: number;
}

/**
 * Reconnect bookkeeping for the subscriber side.
 *
 * Guarantees:
 * - After a `lost()`, `pending()` stays true until a try of `attempt` that began after the
 *   latest loss succeeds; then every `onReset` callback runs once, in the order added, even if
 *   one throws (it is logged).
 * - At most one try runs at a time; triggers that arrive during one cause exactly one more try
 *   right after it. A failed try is retried every `retryMs` until one succeeds.
 * - Nothing runs once closed.
 */
export interface Restorer {
  /** The subscriber connection was lost: a reset is due, and a try running now is stale. */
  lost(): void;
  /** Tries to restore now, if a reset is due (each sign of recovery calls this). */
  restore(): Promise<void>;
  /** Adds a callback for after each completed restore; returns a function that removes it. */
  onReset(callback: () => void): () => void;
  /** True from a loss until the restore after it has completed. */
  pending(): boolean;
  /** Stops the retry timer and forgets the callbacks. */
  close(): void;
}

export function createRestorer(options: RestorerOptions): Restorer {
  const { attempt, isClosed, log, clustered, stuck } = options;
  const clock = options.clock ?? systemClock;
  const retryMs = options.retryMs ?? RETRY_RESTORE_MS;
  const resetCallbacks = new Set<() => void>();
  /** Connection losses so far: a try started before the latest one is stale. */
  let losses = 0;
  let resetPending = false;
  let restoring = false;
  let restoreAgain = false;
  let failingSince: number | undefined;
  let cancelRetry: (() => void) | undefined;

  const scheduleRestore = (): void => {
    if (cancelRetry || isClosed()) return;
    cancelRetry = clock.later(() => {
      cancelRetry = undefined;
      void restore();
    }, retryMs);
  };

  const tryOnce = (): Promise<boolean> => {
    const epoch = losses;
    return attempt(() => epoch !== losses);
  };

  /** Idempotent, and retried on a timer while it cannot complete. */
  const restore = async (): Promise<void> => {
    if (!resetPending || isClosed()) return;
    if (restoring) {
      restoreAgain = true;
      return;
    }
    restoring = true;
    restoreAgain = false;
    let ok = false;
    try {
      ok = await tryOnce();
    } catch (err) {
      log.warn({ err }, 'bus: restoring subscriptions failed; retrying');
    } finally {
      restoring = false;
    }
    if (isClosed()) return;
    if (ok) {
      resetPending = false;
      failingSince = undefined;
      log.info({ channels: options.channelCount() }, 'bus: Redis subscriptions restored');
      for (const callback of [...resetCallbacks]) {
        try {
          callback();
        } catch (err) {
          log.warn({ err }, 'bus onReset callback threw');
        }
      }
      return;
    }
    failingSince ??= clock.now();
    if (stuck && clock.now() - failingSince > stuck.afterMs) {
      failingSince = clock.now();
      stuck.replace();
    }
    if (restoreAgain) void restore();
    else scheduleRestore();
  };

  return {
    lost() {
      if (isClosed()) return;
      losses++;
      if (!resetPending) log.warn({ cluster: clustered }, 'bus: Redis subscriber connection lost');
      resetPending = true;
    },

    restore,

    onReset(callback) {
      resetCallbacks.add(callback);
      return () => {
        resetCallbacks.delete(callback);
      };
    },

    pending: () => resetPending,

    close() {
      cancelRetry?.();
      cancelRetry = undefined;
      resetCallbacks.clear();
    },
  };
}

/** Rejects when `promise` takes longer than `ms`: one step of a restore must not hang it. */
export async function withTimeout<T>(promise: Promise<T>, what: string, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`bus: ${what} timed out`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
