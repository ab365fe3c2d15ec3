/**
 * The abuse limits a test service runs without unless a test turns one on (each limit has
 * tests of its own that set it): test traffic comes fast, from one address and a few users.
 * The message and auth limits are not here: in-process apps run them off, replica processes
 * run them on but high, as production does (test/helpers/replicas.ts).
 */
export const ABUSE_LIMITS_OFF = {
  EDIT_RATE_LIMIT: '0',
  CONVERSATION_RATE_LIMIT: '0',
  MEMBER_RATE_LIMIT: '0',
  UPLOAD_RATE_LIMIT: '0',
  TOKEN_RATE_LIMIT: '0',
  MAX_UPLOADS_PER_USER: '0',
  MAX_UPLOADS: '0',
  MAX_SOCKETS_PER_USER: '0',
  USER_SEARCH_MIN_PREFIX: '0',
} as const;
