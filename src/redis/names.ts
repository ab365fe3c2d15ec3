/**
 * Every Redis key and channel name the service uses, under one prefix.
 * The `{...}` hash tags keep one conversation's (or user's) names in one Redis Cluster slot,
 * so the same names work with sharded pub/sub (SSUBSCRIBE/SPUBLISH).
 */
export const KEY_PREFIX = 'chat:';

export const conversationChannel = (conversationId: number): string =>
  `${KEY_PREFIX}{conv:${conversationId}}:events`;

export const userChannel = (userId: number): string => `${KEY_PREFIX}{user:${userId}}:events`;

/** Fixed-window counter for a rate limit; the window start is part of the key so keys expire. */
export const rateLimitKey = (scope: string, subject: string, windowStart: number): string =>
  `${KEY_PREFIX}{rl:${scope}:${subject}}:${windowStart}`;
