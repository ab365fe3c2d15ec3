import { randomBytes } from 'node:crypto';
import { unavailable } from '../domain/errors.js';
import { ticketKey } from '../redis/names.js';
import { sessionRedis, type SessionRedisTarget } from './redis-client.js';
import { TICKET_PATTERN, type TicketStore } from './ticket-store.js';

/** Shared by every replica: SET … EX on issue, GETDEL on use, so a ticket works once anywhere. */
export function createRedisTicketStore(options: SessionRedisTarget): TicketStore {
  const { client, close: closeClient } = sessionRedis(options);
  return {
    async issue(data, ttlSeconds) {
      const ticket = randomBytes(24).toString('base64url');
      try {
        await client.set(ticketKey(ticket), data, 'EX', ttlSeconds);
      } catch (error) {
        throw unavailable('redis', error);
      }
      return ticket;
    },
    async consume(ticket) {
      if (!TICKET_PATTERN.test(ticket)) return null;
      try {
        return await client.getdel(ticketKey(ticket));
      } catch (error) {
        throw unavailable('redis', error);
      }
    },
    async close() {
      closeClient();
    },
  };
}
