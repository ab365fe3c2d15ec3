/** Cancels a scheduled call; calling it again, or after the call ran, does nothing. */
export type Cancel = () => void;

/**
 * Timers behind a seam, so the parts of a room that wait (the sequencer's gap wait and its
 * retry after a failed read) can be driven step by step in tests. Production uses
 * `realScheduler`.
 */
export interface Scheduler {
  /** Calls `callback` once, `ms` from now and never synchronously, unless cancelled first. */
  schedule(ms: number, callback: () => void): Cancel;
}

export const realScheduler: Scheduler = {
  schedule(ms, callback) {
    // 0 ms is a yield (a big room's broadcast between batches): setImmediate lets pending I/O
    // and timers run first, without setTimeout's 1 ms floor per batch.
    if (ms <= 0) {
      const immediate = setImmediate(callback);
      return () => clearImmediate(immediate);
    }
    const timer = setTimeout(callback, ms);
    return () => clearTimeout(timer);
  },
};
