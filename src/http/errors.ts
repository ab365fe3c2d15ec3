import { STATUS_CODES } from 'node:http';
import { classifyError, DomainError, type DomainErrorKind } from '../domain/errors.js';

/** An HTTP-only refusal (413, 415, 416): a status and headers no domain rule speaks of. */
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

/** API.md's status for each domain error kind. */
const STATUS: Record<DomainErrorKind | 'bad_data', number> = {
  invalid: 400,
  bad_data: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  rate_limited: 429,
  unavailable: 503,
};

/** Seconds a client should wait before retrying a 503. */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

export interface HttpAnswer {
  status: number;
  /** For the client; internal errors say nothing beyond "internal error". */
  message: string;
  headers: Record<string, string>;
  /** How to log it: client mistakes at info, outages at warn, bugs at error. */
  level: 'info' | 'warn' | 'error';
}

/** The HTTP answer to any error a handler threw. */
export function httpAnswer(error: unknown): HttpAnswer {
  if (error instanceof HttpError) return { status: error.statusCode, message: error.message, headers: error.headers, level: 'info' };
  const kind = classifyError(error);
  if (kind === 'internal') return { status: 500, message: 'internal error', headers: {}, level: 'error' };
  if (kind === 'unavailable') {
    return {
      status: 503,
      message: 'a dependency is unavailable, try again shortly',
      headers: { 'retry-after': String(UNAVAILABLE_RETRY_AFTER_SECONDS) },
      level: 'warn',
    };
  }
  if (kind === 'bad_data') return { status: 400, message: 'the request contains characters or numbers that cannot be stored', headers: {}, level: 'info' };
  const domain = error as DomainError;
  const headers: Record<string, string> = domain.retryAfterSeconds === undefined ? {} : { 'retry-after': String(domain.retryAfterSeconds) };
  return { status: STATUS[kind], message: domain.message, headers, level: 'info' };
}

/** The one error body of API.md, plus the request id that also appears in the logs. */
export const errorBody = (statusCode: number, message: string, requestId?: string) => ({
  statusCode,
  error: STATUS_CODES[statusCode] ?? 'Error',
  message,
  ...(requestId ? { requestId } : {}),
});
