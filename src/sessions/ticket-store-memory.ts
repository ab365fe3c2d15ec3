import { randomBytes } from 'node:crypto';
import { TICKET_PATTERN, type TicketStore } from './ticket-store.js';

/** One process only: the embedded default. `now` is injectable for tests (ms since the epoch). */
export function createMemoryTicketStore(options: { now?: () => number } = {}): TicketStore {
  const now = options.now ?? Date.now;
  const tickets = new Map<string, { data: string; expiresAt: number }>();
  const sweep = (time: number) => {
    for (const [ticket, entry] of tickets) if (entry.expiresAt <= time) tickets.delete(ticket);
  };
  return {
    async issue(data, ttlSeconds) {
      const time = now();
      // Swept on issue, so the map holds at most the tickets of the last ttl.
      if (tickets.size > 1000) sweep(time);
      const ticket = randomBytes(24).toString('base64url');
      tickets.set(ticket, { data, expiresAt: time + ttlSeconds * 1000 });
      return ticket;
    },
    async consume(ticket) {
      if (!TICKET_PATTERN.test(ticket)) return null;
      const entry = tickets.get(ticket);
      tickets.delete(ticket);
      return entry && entry.expiresAt > now() ? entry.data : null;
    },
    async close() {
      tickets.clear();
    },
  };
}
