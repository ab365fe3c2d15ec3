import type { Logger } from '../domain/logger.js';
import { type SQL, sql } from 'drizzle-orm';
import type { AuthUser } from '../domain/auth-user.js';
import type { RetryingPublisher } from '../bus/publish-retry.js';
import { userChannel } from '../redis/names.js';
import type { DatabaseHandle } from '../db/client.js';
import { toNumber } from '../db/sql.js';
import type { ConversationEvent } from '../contract/events.js';
import { notFound } from '../domain/errors.js';
import type { NotificationServerEvent } from '../contract/events.js';
import { type FlushedRow, NotificationBatcher, type NotificationBatcherObserver } from './batcher.js';
import { notificationColumns, notificationView, type NotificationRecord } from './views.js';
import { type NotificationView } from '../contract/notifications.js';

/** What a user's notification socket receives. */
export type UserEvent = NotificationServerEvent;

export interface NotificationService {
  /**
   * After commit of a conversation event: new messages from others notify (coalesced; in
   * conversations of up to NOTIFY_MAX_MEMBERS members), and the members a message mentions
   * get a `mention` notification each, whatever the size.
   */
  onConversationEvent(event: ConversationEvent, actor: AuthUser): void;
  conversationCreated(conversationId: number, creator: AuthUser, addedUserIds: number[], memberNames: string[]): Promise<void>;
  list(userId: number, query: { unread: boolean; limit: number; before?: number | undefined }): Promise<NotificationView[]>;
  markRead(userId: number, id: number): Promise<NotificationView>;
  markAllRead(userId: number): Promise<number>;
  /** Tells the user's notification sockets that these notifications were read (by a read marker). */
  announceRead(userId: number, ids: number[]): void;
  /** Writes gathered notifications now (shutdown, tests). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface NotificationServiceOptions {
  database: DatabaseHandle;
  /** At least once: a failed push is retried (a repeat carries the same row, with its id). */
  publisher: RetryingPublisher;
  logger: Logger;
  /** Flush sizes and latency of coalesced notifications (metrics). */
  batcherObserver?: NotificationBatcherObserver;
  /** NOTIFY_MAX_MEMBERS: past it a new message notifies only the members it mentions. */
  notifyMaxMembers?: number;
}

export function createNotificationService(deps: NotificationServiceOptions): NotificationService {
  const { database, publisher, logger } = deps;

  const push = (userId: number, event: UserEvent) => {
    void publisher.publish(userChannel(userId), JSON.stringify(event), 'notification');
  };
  const pushRows = (rows: NotificationRecord[]) => {
    for (const row of rows) push(toNumber(row.user_id), { type: 'notification', message: notificationView(row) });
  };
  const pushFlushed = (rows: FlushedRow[]) => {
    for (const row of rows) {
      if (row.read_by_sending) push(toNumber(row.user_id), { type: 'notification.read', id: toNumber(row.id) });
      else push(toNumber(row.user_id), { type: 'notification', message: notificationView(row) });
    }
  };
  const batcher = new NotificationBatcher(database, pushFlushed, logger, deps.batcherObserver, undefined, deps.notifyMaxMembers);

  return {
    onConversationEvent(event, actor) {
      if (event.type === 'chat.message') batcher.add(event.conversation_id, actor.id, actor.username, event.message.id, event.message.mentions);
    },

    async conversationCreated(conversationId, creator, addedUserIds, memberNames) {
      if (addedUserIds.length === 0) return;
      const text = `${creator.username} added you to a conversation (${memberNames.join(', ')})`.slice(0, 500);
      const rows = await database.query<NotificationRecord>(sql`
        insert into notifications as n (user_id, kind, conversation_id, text)
        select user_id, 'conversation.added', ${conversationId}, ${text}
          from unnest(${`{${addedUserIds.join(',')}}`}::int4[]) as user_id
        returning ${notificationColumns}`);
      pushRows(rows);
    },

    async list(userId, query) {
      const filters: SQL[] = [sql`n.user_id = ${userId}`];
      if (query.unread) filters.push(sql`not n.is_read`);
      if (query.before !== undefined) filters.push(sql`n.id < ${query.before}`);
      const rows = await database.query<NotificationRecord>(sql`
        select ${notificationColumns} from notifications n
         where ${sql.join(filters, sql` and `)} order by n.id desc limit ${query.limit}`);
      return rows.map(notificationView);
    },

    async markRead(userId, id) {
      const [row] = await database.query<NotificationRecord>(sql`
        update notifications n set is_read = true where n.id = ${id} and n.user_id = ${userId}
        returning ${notificationColumns}`);
      if (!row) throw notFound('notification not found');
      push(userId, { type: 'notification.read', id });
      return notificationView(row);
    },

    async markAllRead(userId) {
      // Rows locked in (user, conversation) order, as the batcher's upsert locks them: the two
      // cannot deadlock.
      const rows = await database.query(sql`
        with locked as (
          select id from notifications
           where user_id = ${userId} and not is_read order by conversation_id, id for update)
        update notifications n set is_read = true from locked where n.id = locked.id returning n.id`);
      push(userId, { type: 'notification.read', all: true });
      return rows.length;
    },

    announceRead(userId, ids) {
      for (const id of ids) push(userId, { type: 'notification.read', id });
    },

    flush: () => batcher.flush(),
    close: () => batcher.close(),
  };
}
