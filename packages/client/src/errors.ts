/** A non-2xx answer of the REST API, in its one error shape (API.md, Conventions). */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly error: string,
    message: string,
    /** Seconds, from `Retry-After` on 429 and 503. */
    readonly retryAfter: number | undefined,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** A request that never got an answer (network down, replica gone). */
export class NetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NetworkError';
  }
}
