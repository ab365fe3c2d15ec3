/**
 * Single-use socket tickets (API.md: `POST /api/auth/ws-ticket/`).
 *
 * Guarantees every implementation keeps (checked by test/session-stores-contract.test.ts):
 * - **Single use.** `consume` hands a ticket's data to exactly one caller, however many ask at
 *   once; every later call gets null. The Redis implementation keeps this across replicas
 *   (GETDEL); the memory implementation within one process (embedded mode).
 * - **Expiry.** A ticket older than its `ttlSeconds` is never handed out.
 * - **Unguessable.** Tickets are 192 random bits; a forged one finds nothing.
 * - **Backend unreachable.** The Redis implementation rejects with an `unavailable` DomainError.
 */
export interface TicketStore {
  /** Stores `data` under a fresh ticket for `ttlSeconds`; resolves to the ticket. */
  issue(data: string, ttlSeconds: number): Promise<string>;
  /** The ticket's data, once; null when it is unknown, used or expired. */
  consume(ticket: string): Promise<string | null>;
  close(): Promise<void>;
}

/** Tickets are base64url of 24 random bytes: anything else is refused without a lookup. */
export const TICKET_PATTERN = /^[A-Za-z0-9_-]{32}$/;
