import { isBadDataError, isConnectionError } from '../db/errors.js';

/**
 * What went wrong, in the domain's words. HTTP (src/http/errors.ts) and the chat socket
 * protocol (src/realtime/protocol.ts) each map these kinds once, to a status and to an
 * `error` event code.
 */
export type DomainErrorKind =
  | 'invalid'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'rate_limited'
  | 'unavailable';

/** An error whose message is meant for the client. */
export class DomainError extends Error {
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    /** Seconds until a retry can succeed (rate limits). */
    readonly retryAfterSeconds?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DomainError';
  }
}

/** Bad input; the message names the field. */
export const invalid = (message: string) => new DomainError('invalid', message);
export const unauthenticated = (message = 'invalid or expired token') => new DomainError('unauthenticated', message);
/** Allowed to see, not to do. */
export const forbidden = (message: string) => new DomainError('forbidden', message);
/** Absent, or not the caller's to see: existence is not revealed. */
export const notFound = (message: string) => new DomainError('not_found', message);
export const conflict = (message: string) => new DomainError('conflict', message);
export const rateLimited = (retryAfterSeconds: number) =>
  new DomainError('rate_limited', `rate limit exceeded, retry in ${retryAfterSeconds}s`, retryAfterSeconds);
/** A backend (database, Redis, storage) did not answer; the client may retry. */
export const unavailable = (dependency: string, cause?: unknown) =>
  new DomainError('unavailable', `${dependency} unavailable`, undefined, { cause });

/** Every error, domain or not, in one of the kinds above, or `bad_data` / `internal`. */
export function classifyError(error: unknown): DomainErrorKind | 'bad_data' | 'internal' {
  if (error instanceof DomainError) return error.kind;
  if (isConnectionError(error)) return 'unavailable';
  if (isBadDataError(error)) return 'bad_data';
  return 'internal';
}
