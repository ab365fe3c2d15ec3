import { STATUS_CODES } from 'node:http';

/** An error whose status and message are meant for the client. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const badRequest = (message: string) => new HttpError(400, message);
export const forbidden = (message: string) => new HttpError(403, message);
export const notFound = (message: string) => new HttpError(404, message);
export const conflict = (message: string) => new HttpError(409, message);
export const tooManyRequests = (retryAfterSeconds: number) =>
  new HttpError(429, `rate limit exceeded, retry in ${retryAfterSeconds}s`, { 'retry-after': String(retryAfterSeconds) });

/** The one error body of API.md, plus the request id that also appears in the logs. */
export const errorBody = (statusCode: number, message: string, requestId?: string) => ({
  statusCode,
  error: STATUS_CODES[statusCode] ?? 'Error',
  message,
  ...(requestId ? { requestId } : {}),
});

/** A backend (Redis, storage) did not answer: the client gets a 503 and may retry. */
export class DependencyUnavailableError extends Error {
  constructor(dependency: string, options?: { cause?: unknown }) {
    super(`${dependency} unavailable`, options);
    this.name = 'DependencyUnavailableError';
  }
}

/** The root cause of a driver error, through drizzle's wrapper. */
function rootCause(error: unknown): { code?: unknown; message?: unknown } | undefined {
  let current: unknown = error;
  // The deepest cause, a few levels at most (a cause cycle must not hang an error response).
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    const cause = (current as { cause?: unknown }).cause;
    if (!cause) break;
    current = cause;
  }
  return current && typeof current === 'object' ? (current as { code?: unknown }) : undefined;
}

/** The SQLSTATE (or socket error code) behind a database error, if any. */
export const databaseErrorCode = (error: unknown): string | undefined => {
  const code = rootCause(error)?.code;
  return typeof code === 'string' ? code : undefined;
};

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH',
  'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED',
  '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006',
]);

/** A dependency is down (503), as opposed to a bug (500). */
export const isUnavailableError = (error: unknown): boolean => {
  if (error instanceof DependencyUnavailableError) return true;
  const code = databaseErrorCode(error);
  if (code && UNAVAILABLE_CODES.has(code)) return true;
  const message = String(rootCause(error)?.message ?? '');
  return /ECONNREFUSED|connection (terminated|closed|ended)|write CONNECTION_CLOSED|PGlite is closed/i.test(message);
};

/** Input the database refused as data (not a bug): NUL bytes, bad encodings, overflow. */
export const isBadDataError = (error: unknown): boolean => {
  const code = databaseErrorCode(error);
  return code === '22P05' || code === '22021' || code === '22003' || code === '22P02';
};

export const UNIQUE_VIOLATION = '23505';
export const DEADLOCK_DETECTED = '40P01';
