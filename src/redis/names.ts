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

/**
 * Session changes (logout, logout-all, password change, account deletion): every replica
 * listens, drops its cached view of that user's tokens and re-checks the user's sockets.
 * One channel for all users: such changes are rare, and every replica needs every one.
 */
export const sessionsChannel = `${KEY_PREFIX}{sessions}:changes`;

/** A single-use socket ticket; it expires by itself. */
export const ticketKey = (ticket: string): string => `${KEY_PREFIX}{ticket:${ticket}}`;

/** The user's open sockets across replicas: a sorted set of socket ids scored by lease expiry. */
export const socketSlotsKey = (userId: number): string => `${KEY_PREFIX}{user:${userId}}:sockets`;

/**
 * Presence (sessions/presence-store-redis.ts). The replica leases live under one hash tag, so
 * one script renews a lease and finds the dead ones; each user's set of leases holding them
 * lives with the user's other names.
 */
export const presenceLeasesKey = `${KEY_PREFIX}{presence}:leases`;
/** A replica's lease: a key that expires unless renewed. */
export const presenceLeaseKey = (leaseId: string): string => `${KEY_PREFIX}{presence}:lease:${leaseId}`;
/** The users a lease holds, so whoever sweeps it knows whose entries to take out. */
export const presenceLeaseUsersKey = (leaseId: string): string => `${KEY_PREFIX}{presence}:lease:${leaseId}:users`;
/** The leases (replicas) where the user holds a socket: online while not empty. */
export const presenceUserKey = (userId: number): string => `${KEY_PREFIX}{user:${userId}}:presence`;
