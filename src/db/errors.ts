/** What a database error means, read from the driver's error (postgres.js, PGlite) through drizzle's wrapper. */

export const UNIQUE_VIOLATION = '23505';
export const DEADLOCK_DETECTED = '40P01';
export const SERIALIZATION_FAILURE = '40001';
/** A write on a read-only server: a standby, or a server not yet promoted during a failover. */
export const READ_ONLY_TRANSACTION = '25006';
/** No server of a multi-host DATABASE_URL is read-write right now (db/read-write-host.ts). */
export const NO_READ_WRITE_HOST = 'NO_READ_WRITE_HOST';

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
  // Node's own for a write to a socket that closed under the driver (a failover's closed sockets).
  'ERR_SOCKET_CLOSED', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END',
  '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006',
  // statement_timeout and lock_timeout: the database is too slow or a row is held, not a bug.
  '57014', '55P03',
  // Deadlock victims and serialization failures still failing after the retries (db/retry.ts).
  '40P01', '40001',
  // A read-only server (a standby during a failover, before the client moves to the new primary).
  '25006', NO_READ_WRITE_HOST,
]);

/** The server or the connection to it is gone (as opposed to a bug): the caller may retry. */
export const isConnectionError = (error: unknown): boolean => {
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
