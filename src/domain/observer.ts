/**
 * How domain code reports what it measured without knowing who listens: the app wires these
 * to Prometheus (src/metrics/); tests and embedded uses may leave them out.
 */

/** The statements whose latency is worth a name: the hot paths of sends, history, replay, notifications. */
export type StatementName = 'send_batch' | 'send_one' | 'history_page' | 'event_log_read' | 'notification_upsert' | 'search_index';

/**
 * How long a named statement took, in seconds, and whether it failed. With tracing on
 * (src/tracing/), `around` runs each named statement so that its span carries the name; off,
 * it is absent and a named statement runs exactly as before.
 */
export type StatementTimer = ((statement: StatementName, seconds: number, failed: boolean) => void) & {
  readonly around?: StatementSpan;
};

/** Runs a named statement inside whatever tracing wants around it. */
export type StatementSpan = <T>(statement: StatementName, run: () => Promise<T>) => Promise<T>;

/** Runs `run` and reports its duration under `statement`; its result or error is passed on. */
export async function timeStatement<T>(timer: StatementTimer | undefined, statement: StatementName, run: () => Promise<T>): Promise<T> {
  if (!timer) return run();
  const started = performance.now();
  try {
    const result = await (timer.around ? timer.around(statement, run) : run());
    timer(statement, (performance.now() - started) / 1000, false);
    return result;
  } catch (error) {
    timer(statement, (performance.now() - started) / 1000, true);
    throw error;
  }
}

/**
 * Set when tracing is on: work done for several callers at once (a send batch) runs in the
 * context of the one it is attributed to, not of whichever caller happened to start the
 * worker. `capture` is called as a caller's work is queued; off, nothing is captured.
 */
export interface ContextCarrier {
  capture(): unknown;
  run<T>(captured: unknown, work: () => Promise<T>): Promise<T>;
}
