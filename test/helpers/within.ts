/** How long a contract test waits for something that should happen promptly. */
export const WITHIN_MS = 10_000;

/** Fails (rejects) if `promise` has not settled within `ms`; never a fixed wait. */
export async function within<T>(promise: Promise<T>, what: string, ms = WITHIN_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
