import { databaseErrorCode, DEADLOCK_DETECTED, SERIALIZATION_FAILURE } from './errors.js';

/** Tries per statement or transaction when PostgreSQL picks it as a deadlock or serialization victim. */
export const CONFLICT_ATTEMPTS = 3;
/** Before a retry, a random wait up to this (ms) times the attempt: the other party finishes first. */
const CONFLICT_JITTER_MS = 20;

/** A deadlock victim or a serialization failure: rolled back whole, so running it again is safe. */
export const isConflict = (error: unknown): boolean => {
  const code = databaseErrorCode(error);
  return code === DEADLOCK_DETECTED || code === SERIALIZATION_FAILURE;
};

/** Runs `work` again (up to `attempts` in all) while it fails as a conflict; then the last error. */
export async function retryConflicts<R>(work: () => Promise<R>, attempts = CONFLICT_ATTEMPTS): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= attempts || !isConflict(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * CONFLICT_JITTER_MS * attempt));
    }
  }
}
