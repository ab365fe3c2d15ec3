import { sql } from 'drizzle-orm';
import type { DatabaseHandle, Query } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { intArray, isoTime, toNumber } from '../db/sql.js';
import type { AuthUser } from '../domain/auth-user.js';
import { conflict, DomainError, forbidden, invalid, notFound } from '../domain/errors.js';
import type { EventUser } from '../contract/events.js';
import { type AssignableRole, type MemberRole, type MemberView, TITLE_MAX_LENGTH, type UserReference } from '../contract/members.js';
import type { LockedConversation, SequencedEvent, WritePath } from '../messages/write-path.js';
import { INBOX_TRACKED_MEMBERS, retrackMemberships } from './inbox-order.js';
import { resolveUsers } from './user-references.js';

/**
 * Membership of group conversations (API.md version 2): adding and removing members, roles,
 * renames. Each change is a conversation event of the one write path: under the
 * conversation's row lock it checks the actor's role, writes the change and its event(s),
 * and publishes after commit. A direct conversation's membership never changes (409), except
 * when an account is deleted.
 */
export interface Membership {
  /** The users actually added (members already in are ignored), in the order named. */
  add(actor: AuthUser, conversationId: number, references: readonly UserReference[]): Promise<EventUser[]>;
  /** Removes `userId` (the actor themselves: leaving). Owner succession included. */
  remove(actor: AuthUser, conversationId: number, userId: number): Promise<void>;
  setRole(actor: AuthUser, conversationId: number, userId: number, role: AssignableRole): Promise<MemberView>;
  rename(actor: AuthUser, conversationId: number, title: string): Promise<void>;
  /** Leaves every conversation, direct ones included (account deletion): a `member.removed` in each. */
  leaveAll(user: AuthUser): Promise<void>;
  list(actor: AuthUser, conversationId: number, page: { limit: number; after?: number | undefined }): Promise<{ members: MemberView[]; hasMore: boolean }>;
}

export interface MembershipOptions {
  database: DatabaseHandle;
  writePath: WritePath;
  maxParticipants: number;
}

interface MemberRecord extends Record<string, unknown> {
  user_id: unknown;
  username: string;
  role: MemberRole;
  last_read_seq: unknown;
  joined_at: string;
}

const memberView = (row: MemberRecord): MemberView => ({
  id: toNumber(row.user_id),
  username: row.username,
  role: row.role,
  last_read_seq: toNumber(row.last_read_seq),
  joined_at: row.joined_at,
});

const memberColumns = sql`p.user_id, u.username, p.role, p.last_read_seq, ${isoTime(sql`p.joined_at`)} as joined_at`;

const unchangeable = () => conflict('a direct conversation\'s members, roles and title never change');

export function createMembership(options: MembershipOptions): Membership {
  const { database, writePath, maxParticipants } = options;

  const memberRow = async (query: Query, conversationId: number, userId: number): Promise<MemberRecord | undefined> => {
    const [row] = await query<MemberRecord>(sql`
      select ${memberColumns} from participants p join users u on u.id = p.user_id
       where p.conversation_id = ${conversationId} and p.user_id = ${userId}`);
    return row;
  };

  /** The member removal under the lock `sequenced` holds; its events (member.removed, then any succession). */
  const removal = async (query: Query, seq: number, locked: LockedConversation, actor: AuthUser, conversationId: number, userId: number, leavingAll: boolean) => {
    if (locked.kind === 'direct' && !leavingAll) throw unchangeable();
    const target = userId === actor.id ? { role: locked.actorRole, username: actor.username } : await memberRow(query, conversationId, userId);
    if (!target) throw notFound('member not found');
    if (userId !== actor.id) {
      if (target.role === 'owner') throw forbidden('nobody removes the owner');
      if (locked.actorRole === 'member') throw forbidden('only the owner and admins remove members');
    }
    await query(sql`delete from participants where conversation_id = ${conversationId} and user_id = ${userId}`);
    await query(sql`update conversations set member_count = member_count - 1 where id = ${conversationId}`);
    await retrackMemberships(query, conversationId, locked.memberCount, locked.memberCount - 1);
    const removed: SequencedEvent = {
      kind: EventKind.memberRemoved,
      userId,
      event: {
        type: 'member.removed',
        seq,
        conversation_id: conversationId,
        user: { id: userId, username: target.username },
        by: { id: actor.id, username: actor.username },
      },
    };
    if (target.role !== 'owner') return { ...removed, result: undefined };
    // The longest-standing admin, else member, becomes owner: a second event of the same change.
    // Two walks of participants_joined_idx that each stop at their first row, not a sort of every member.
    const [heir] = await query<{ user_id: unknown; username: string }>(sql`
      select h.user_id, u.username from (
          (select p.user_id, 0 as rank from participants p
            where p.conversation_id = ${conversationId} and p.role = 'admin' order by p.joined_at, p.user_id limit 1)
          union all
          (select p.user_id, 1 as rank from participants p
            where p.conversation_id = ${conversationId} order by p.joined_at, p.user_id limit 1)) h
        join users u on u.id = h.user_id
       order by h.rank limit 1`);
    if (!heir) return { ...removed, result: undefined };
    const heirId = toNumber(heir.user_id);
    await query(sql`update participants set role = 'owner' where conversation_id = ${conversationId} and user_id = ${heirId}`);
    const succession: SequencedEvent = {
      kind: EventKind.memberRole,
      userId: heirId,
      event: { type: 'member.role', seq: seq + 1, conversation_id: conversationId, user: { id: heirId, username: heir.username }, role: 'owner' },
    };
    return { ...removed, then: [succession], result: undefined };
  };

  const remove = async (actor: AuthUser, conversationId: number, userId: number, leavingAll = false): Promise<void> => {
    await writePath.sequenced(actor, conversationId, (query, seq, locked) => removal(query, seq, locked, actor, conversationId, userId, leavingAll));
  };

  return {
    async add(actor, conversationId, references) {
      const added = await writePath.sequenced(actor, conversationId, async (query, seq, locked) => {
        if (locked.kind === 'direct') throw unchangeable();
        if (locked.actorRole === 'member') throw forbidden('only the owner and admins add members');
        const named = await resolveUsers(query, references);
        const ids = [...named.keys()];
        // A new member starts with everything up to their own joining read: unread counts begin at 0.
        const inserted = await query<{ user_id: unknown }>(sql`
          insert into participants (conversation_id, user_id, role, last_read_seq, read_count, large)
          select ${conversationId}, u.id, 'member', ${seq}, ${locked.messageCount}, ${locked.memberCount > INBOX_TRACKED_MEMBERS}
            from unnest(${intArray(ids)}::int4[]) with ordinality as u(id, n) order by u.n
          on conflict (conversation_id, user_id) do nothing
          returning user_id`);
        if (inserted.length === 0) return null;
        if (locked.memberCount + inserted.length > maxParticipants) {
          throw invalid(`participants: at most ${maxParticipants} members`);
        }
        await query(sql`update conversations set member_count = member_count + ${inserted.length} where id = ${conversationId}`);
        await retrackMemberships(query, conversationId, locked.memberCount, locked.memberCount + inserted.length);
        const insertedIds = new Set(inserted.map((row) => toNumber(row.user_id)));
        const users = ids.filter((id) => insertedIds.has(id)).map((id) => ({ id, username: named.get(id)! }));
        return {
          kind: EventKind.memberAdded,
          event: { type: 'member.added', seq, conversation_id: conversationId, users, by: { id: actor.id, username: actor.username } },
          result: users,
        };
      });
      return added ?? [];
    },

    remove: (actor, conversationId, userId) => remove(actor, conversationId, userId),

    async setRole(actor, conversationId, userId, role) {
      const changed = await writePath.sequenced(actor, conversationId, async (query, seq, locked) => {
        if (locked.kind === 'direct') throw unchangeable();
        if (locked.actorRole !== 'owner') throw forbidden('only the owner changes roles');
        const target = await memberRow(query, conversationId, userId);
        if (!target) throw notFound('member not found');
        if (target.role === 'owner') throw forbidden('the owner\'s role passes on only when they leave');
        if (target.role === role) return null;
        await query(sql`update participants set role = ${role} where conversation_id = ${conversationId} and user_id = ${userId}`);
        return {
          kind: EventKind.memberRole,
          userId,
          event: { type: 'member.role', seq, conversation_id: conversationId, user: { id: userId, username: target.username }, role },
          result: memberView({ ...target, role }),
        };
      });
      if (changed) return changed;
      // Unchanged: no event; the member as they stand (or 404, if they are gone meanwhile).
      const row = await memberRow((statement) => database.query(statement), conversationId, userId);
      if (!row) throw notFound('member not found');
      return memberView(row);
    },

    async rename(actor, conversationId, rawTitle) {
      const title = rawTitle.trim();
      if (title.length === 0 || title.length > TITLE_MAX_LENGTH) throw invalid(`title: 1-${TITLE_MAX_LENGTH} characters`);
      await writePath.sequenced(actor, conversationId, async (query, seq, locked) => {
        if (locked.kind === 'direct') throw unchangeable();
        if (locked.actorRole === 'member') throw forbidden('only the owner and admins rename a conversation');
        const [row] = await query<{ changed: boolean }>(sql`
          update conversations set title = ${title} where id = ${conversationId} and title is distinct from ${title} returning true as changed`);
        if (!row) return null;
        return {
          kind: EventKind.conversationUpdated,
          event: { type: 'conversation.updated', seq, conversation_id: conversationId, conversation: { id: conversationId, title } },
          result: undefined,
        };
      });
    },

    async leaveAll(user) {
      const rows = await database.query<{ conversation_id: unknown }>(sql`
        select conversation_id from participants where user_id = ${user.id} order by conversation_id`);
      for (const row of rows) {
        try {
          await remove(user, toNumber(row.conversation_id), user.id, true);
        } catch (error) {
          // Left meanwhile (another device, a removal): nothing more to do there.
          if (!(error instanceof DomainError && error.kind === 'not_found')) throw error;
        }
      }
    },

    async list(actor, conversationId, { limit, after }) {
      // One statement: no row at all when the caller is not a member (404); otherwise the page,
      // by user id along the primary key, or one row of nulls when it is empty.
      const rows = await database.query<MemberRecord>(sql`
        select page.* from participants me
          left join lateral (
            select ${memberColumns} from participants p join users u on u.id = p.user_id
             where p.conversation_id = ${conversationId} and p.user_id > ${after ?? 0}
             order by p.user_id limit ${limit + 1}) page on true
         where me.conversation_id = ${conversationId} and me.user_id = ${actor.id}`);
      if (rows.length === 0) throw notFound('conversation not found');
      const members = rows.filter((row) => row.user_id !== null).map(memberView);
      const hasMore = members.length > limit;
      return { members: hasMore ? members.slice(0, limit) : members, hasMore };
    },
  };
}
