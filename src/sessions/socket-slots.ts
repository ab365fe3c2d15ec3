/**
 * Open sockets per user, counted across replicas (MAX_SOCKETS_PER_USER).
 *
 * Guarantees every implementation keeps (checked by test/session-stores-contract.test.ts):
 * - **Bounded.** `acquire` succeeds only while the user holds fewer than `limit` slots; a
 *   `limit` of 0 always succeeds and counts nothing.
 * - **Released.** `release` frees the slot at once (idempotent).
 * - **Leases.** On Redis a slot is a lease that this instance renews while the socket is
 *   open; the slots of a replica that died without releasing them lapse after `LEASE_MS`, so
 *   a crash cannot lock a user out for good. In memory the count is per process.
 * - **Backend unreachable.** The Redis implementation rejects with an `unavailable` DomainError.
 */
export interface SocketSlots {
  acquire(userId: number, socketId: string, limit: number): Promise<boolean>;
  release(userId: number, socketId: string): void;
  close(): Promise<void>;
}

/** How long a slot outlives its last renewal (renewed every third of it). */
export const LEASE_MS = 60_000;
