export type PresenceStatus = 'online' | 'offline';

export interface PresenceChange {
  userId: number;
  status: PresenceStatus;
}

/** Redis commands the store sent, by what they were for (metrics). */
export type PresenceCommandKind = 'change' | 'lease' | 'sweep' | 'resync' | 'read';

export interface PresenceStoreObserver {
  commands?(kind: PresenceCommandKind, count: number): void;
  /** A command failed; the store resyncs at its next lease tick. */
  failed?(error: unknown): void;
}

/**
 * Who is online, across replicas (API.md version 2, "Presence"). The caller (the presence
 * tracker) counts a user's sockets on this replica and calls `arrive` on the first and `depart`
 * once the last is gone (after its grace); the store turns those into changes of the user's
 * status cluster-wide.
 *
 * Guarantees every implementation keeps:
 * - **Changes, once.** `onChange` listeners hear `online` when the first replica holding the
 *   user arrives and `offline` when the last one departs, on exactly one replica (the one whose
 *   call, or sweep, made the change); calls that change nothing (a second replica, the second
 *   tab) report nothing. A replica's own changes are reported in the order it made them.
 * - **Leases (Redis).** Each replica holds a lease it renews every `timeoutMs / 6`; a lease not
 *   renewed for `timeoutMs / 2` (its replica killed or stalled) is swept by any replica at its
 *   next tick, and the users it held who hold no other lease go offline there: within
 *   `timeoutMs` of the replica's last renewal.
 * - **Bounded traffic (Redis).** Two commands per `arrive` or `depart`, one per lease tick per
 *   replica whatever the number of users (no per-user heartbeat), two per user of a swept lease,
 *   once.
 * - **Resync (Redis).** When a command fails, or the lease is found gone (Redis restarted without
 *   its data, or this replica was swept while stalled), the replica takes a new lease and
 *   registers its users under it in one batch, then withdraws the old lease's entries itself.
 *   Users that Redis forgot come back `online` (an `online` for a user whose status never
 *   changed is possible then, never a lost `offline`).
 * - **Memory.** One process: `arrive` and `depart` are the changes.
 */
export interface PresenceStore {
  arrive(userId: number): void;
  depart(userId: number): void;
  /** Which of `userIds` are online anywhere. Rejects with an `unavailable` DomainError when the backend is down. */
  online(userIds: readonly number[]): Promise<Set<number>>;
  onChange(listener: (change: PresenceChange) => void): void;
  close(): Promise<void>;
}

/** The lease renewal interval, as a fraction of the timeout (see the guarantees). */
export const leaseTickMs = (timeoutMs: number): number => Math.max(50, Math.floor(timeoutMs / 6));
export const leaseTtlMs = (timeoutMs: number): number => Math.max(100, Math.floor(timeoutMs / 2));
