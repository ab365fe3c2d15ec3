import type { Bus } from '../bus/bus.js';
import type { ReadStateView } from '../contract/conversations.js';
import type { DatabaseHandle } from '../db/client.js';
import type { AuthUser } from '../domain/auth-user.js';
import type { Logger } from '../domain/logger.js';
import { markRead } from './read-state.js';
import { ReceiptThrottle } from './receipts.js';

/** Moving read markers, REST and the `read` frame alike. */
export interface ReadService {
  /**
   * Moves the caller's marker forward to `seq` (clamped to `last_seq`); 404 for a
   * non-member. When nothing unread is left, their "new messages" notification of the
   * conversation is read (and their devices told). A marker that moved sends a receipt
   * (throttled) in conversations of up to `receiptsMaxMembers` members.
   */
  read(user: AuthUser, conversationId: number, seq: number): Promise<ReadStateView>;
  close(): void;
}

export interface ReadServiceOptions {
  database: DatabaseHandle;
  bus: Bus;
  logger: Logger;
  receiptsMaxMembers: number;
  /** Tells the user's notification sockets these notifications were read. */
  notificationsRead(userId: number, ids: number[]): void;
}

export function createReadService(options: ReadServiceOptions): ReadService {
  const { database, receiptsMaxMembers } = options;
  const receipts = new ReceiptThrottle(options.bus, options.logger);
  return {
    async read(user, conversationId, seq) {
      const marked = await markRead(database, user.id, conversationId, seq);
      if (marked.readNotificationIds.length > 0) options.notificationsRead(user.id, marked.readNotificationIds);
      if (marked.moved && marked.member_count <= receiptsMaxMembers) receipts.offer(conversationId, user, marked.last_read_seq);
      return { last_read_seq: marked.last_read_seq, unread_count: marked.unread_count };
    },
    close: () => receipts.close(),
  };
}
