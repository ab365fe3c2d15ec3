/**
 * How domain code reports what it measured without knowing who listens: the app wires these
 * to Prometheus (src/metrics/); tests and embedded uses may leave them out.
 */

/** The statements whose latency is worth a name: the hot paths of sends, history, replay, notifications. */
export type StatementName = 'send_batch' | 'send_one' | 'history_page' | 'event_log_read' | 'notification_upsert';

/** How long a named statement took, in seconds, and whether it failed. */
export type StatementTimer = (statement: StatementName, seconds: number, failed: boolean) => void;

/** Runs `run` and reports its duration under `statement`; its result or error is passed on. */
export async function timeStatement<T>(timer: StatementTimer | undefined, statement: StatementName, run: () => Promise<T>): Promise<T> {
  if (!timer) return run();
  const started = performance.now();
  try {
    const result = await run();
    timer(statement, (performance.now() - started) / 1000, false);
    return result;
  } catch (error) {
    timer(statement, (performance.now() - started) / 1000, true);
    throw error;
  }
}
