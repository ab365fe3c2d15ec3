/** Codes of `{"type": "error", "code": ...}` events: the answer to a frame that failed. */
export const ERROR_CODES = [
  'bad_json',
  'unknown_type',
  'invalid_frame',
  'forbidden',
  'not_found',
  'conflict',
  'rate_limited',
  'unavailable',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Close codes of both sockets (4000-4999 are the application's). */
export const CloseCode = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  internal: 1011,
  badRequest: 4400,
  unauthorized: 4401,
  forbidden: 4403,
  /** More sockets than MAX_SOCKETS_PER_USER: the client may retry later. */
  tooManySockets: 4429,
  /**
   * `?last_seq=` more than MAX_REPLAY_EVENTS behind: the client reloads the newest page over
   * REST and reconnects from the `last_seq` it then has.
   */
  tooFarBehind: 4409,
  /** The client read too slowly; it reconnects and resumes with `last_seq`. */
  slowConsumer: 4008,
} as const;

/** Closes after which reconnecting with the same credentials cannot succeed. */
export const FATAL_CLOSE_CODES: readonly number[] = [CloseCode.badRequest, CloseCode.unauthorized, CloseCode.forbidden];
