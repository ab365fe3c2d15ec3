export interface BackoffOptions {
  /** Ceiling of the first retry's delay. */
  initialMs: number;
  /** The ceiling never grows past this. */
  maxMs: number;
  /** Growth of the ceiling per failed attempt. */
  factor: number;
  /** Injected in tests; `Math.random` otherwise. */
  random: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 15_000, factor: 2, random: Math.random };

/**
 * Delay before retry number `attempt` (0-based): exponential growth of a ceiling, and a
 * uniformly random point in its upper half ("equal jitter"). The randomness spreads the
 * thousands of clients a restarted replica dropped over the window instead of having them
 * all return at once; keeping the lower half empty keeps each client's own retries backing off.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  const ceiling = Math.min(options.maxMs, options.initialMs * options.factor ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + options.random() * (ceiling / 2));
}
