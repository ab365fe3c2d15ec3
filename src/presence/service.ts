import { sql } from 'drizzle-orm';
import type { Bus } from '../bus/bus.js';
import type { PresenceEvent, PresenceListQuery, PresenceView } from '../contract/presence.js';
import type { DatabaseHandle } from '../db/client.js';
import { isoFrom, toNumber } from '../db/sql.js';
import type { AuthUser } from '../domain/auth-user.js';
import { notFound } from '../domain/errors.js';
import type { Logger } from '../domain/logger.js';
import { conversationChannel } from '../redis/names.js';
import type { PresenceChange, PresenceStore } from '../sessions/presence-store.js';
import { encodePresence } from './payload.js';
import { PresenceTracker } from './tracker.js';

/**
 * The small conversations one change is published to at most, most recently active first: a
 * user in thousands of groups costs at most this many publishes per change, not one per group.
 */
export const MAX_PRESENCE_CONVERSATIONS = 1_000;
/** Publishes in flight per change at once. */
const PUBLISH_BATCH = 100;

export interface PresenceObserver {
  changed?(status: PresenceChange['status']): void;
  /** Presence payloads handed to the bus (each one Redis PUBLISH with Redis). */
  published?(count: number): void;
}

export interface PresenceService {
  /** A socket of the user (chat or notifications) opened on this replica. */
  connected(userId: number): void;
  /** One closed. */
  disconnected(userId: number): void;
  /** A page of the conversation's members with their status; 404 for a non-member. */
  list(caller: AuthUser, conversationId: number, page: PresenceListQuery): Promise<{ members: PresenceView[]; hasMore: boolean }>;
  /** One user's status; 404 unless the caller shares a conversation with them (or is them). */
  ofUser(caller: AuthUser, userId: number): Promise<PresenceView>;
  /** Shutdown: users depart (within their grace), their changes are written and published. */
  close(): Promise<void>;
}

export interface PresenceServiceOptions {
  database: DatabaseHandle;
  bus: Bus;
  store: PresenceStore;
  logger: Logger;
  graceMs: number;
  /** A shutdown waits for the grace (true with Redis: the users reconnect to other replicas meanwhile) or departs at once. */
  drainWithGrace: boolean;
  /** PRESENCE_MAX_MEMBERS: live events only in conversations of up to this many members. */
  maxMembers: number;
  observer?: PresenceObserver;
}

interface PresenceRecord extends Record<string, unknown> {
  user_id: unknown;
  username: string | null;
  last_seen_at: unknown;
}

/**
 * Presence (API.md version 2): the tracker counts this replica's sockets, the store decides
 * changes across replicas, and each change is handled here on the replica that made it:
 * `last_seen_at` is written to PostgreSQL (so it outlives Redis), then a `presence` payload
 * goes to each of the user's conversations of up to `maxMembers` members. A user's changes are
 * handled one after another, so their payloads leave in the order the changes were made.
 */
export function createPresenceService(options: PresenceServiceOptions): PresenceService {
  const { database, bus, store, logger, maxMembers } = options;
  const observer = options.observer ?? {};
  const tracker = new PresenceTracker(store, options.graceMs, options.drainWithGrace);
  const chains = new Map<number, Promise<void>>();

  const handle = async (change: PresenceChange): Promise<void> => {
    observer.changed?.(change.status);
    const [user] = await database.query<{ username: string; last_seen_at: unknown }>(sql`
      update users set last_seen_at = now() where id = ${change.userId} returning username, last_seen_at`);
    if (!user || maxMembers === 0) return;
    const rows = await database.query<{ id: unknown }>(sql`
      select c.id from participants p join conversations c on c.id = p.conversation_id
       where p.user_id = ${change.userId} and c.member_count <= ${maxMembers}
       order by c.last_message_at desc nulls last, c.id desc limit ${MAX_PRESENCE_CONVERSATIONS}`);
    const lastSeenAt = isoFrom(user.last_seen_at);
    for (let start = 0; start < rows.length; start += PUBLISH_BATCH) {
      const batch = rows.slice(start, start + PUBLISH_BATCH).map((row) => {
        const event: PresenceEvent = {
          type: 'presence',
          conversation_id: toNumber(row.id),
          user: user.username,
          user_id: change.userId,
          status: change.status,
          last_seen_at: lastSeenAt,
        };
        return bus.publish(conversationChannel(event.conversation_id), encodePresence(event));
      });
      observer.published?.(batch.length);
      await Promise.allSettled(batch);
    }
  };

  store.onChange((change) => {
    const previous = chains.get(change.userId) ?? Promise.resolve();
    const next: Promise<void> = previous
      .then(() => handle(change))
      .catch((error: unknown) => logger.warn({ err: error, userId: change.userId }, 'presence change not fully announced'))
      .finally(() => {
        if (chains.get(change.userId) === next) chains.delete(change.userId);
      });
    chains.set(change.userId, next);
  });

  const view = (row: PresenceRecord, online: Set<number>, now: string): PresenceView => {
    const userId = toNumber(row.user_id);
    const isOnline = online.has(userId);
    return {
      user_id: userId,
      username: row.username ?? '',
      status: isOnline ? 'online' : 'offline',
      // Online: they are being seen now.
      last_seen_at: isOnline ? now : row.last_seen_at === null ? null : isoFrom(row.last_seen_at),
    };
  };

  return {
    connected: (userId) => tracker.connected(userId),
    disconnected: (userId) => tracker.disconnected(userId),

    async list(caller, conversationId, { limit, after }) {
      // One statement, as the members list: no row when the caller is not a member (404),
      // otherwise the page by user id, or one row of nulls when it is empty.
      const rows = await database.query<PresenceRecord>(sql`
        select page.* from participants me
          left join lateral (
            select u.id as user_id, u.username, u.last_seen_at from participants p join users u on u.id = p.user_id
             where p.conversation_id = ${conversationId} and p.user_id > ${after ?? 0}
             order by p.user_id limit ${limit + 1}) page on true
         where me.conversation_id = ${conversationId} and me.user_id = ${caller.id}`);
      if (rows.length === 0) throw notFound('conversation not found');
      const found = rows.filter((row) => row.user_id !== null);
      const page = found.slice(0, limit);
      const online = await store.online(page.map((row) => toNumber(row.user_id)));
      const now = new Date().toISOString();
      return { members: page.map((row) => view(row, online, now)), hasMore: found.length > limit };
    },

    async ofUser(caller, userId) {
      const [row] = await database.query<PresenceRecord>(sql`
        select u.id as user_id, u.username, u.last_seen_at from users u
         where u.id = ${userId} and u.deleted_at is null
           and (u.id = ${caller.id} or exists (
             select 1 from participants mine join participants theirs
                 on theirs.conversation_id = mine.conversation_id and theirs.user_id = u.id
              where mine.user_id = ${caller.id}))`);
      if (!row) throw notFound('user not found');
      const online = await store.online([userId]);
      return view(row, online, new Date().toISOString());
    },

    async close() {
      await tracker.drain();
      while (chains.size > 0) await Promise.all(chains.values());
    },
  };
}
