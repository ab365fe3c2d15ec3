import { sql } from 'drizzle-orm';
import type { Logger } from '../domain/logger.js';
import type { RetryingPublisher } from '../bus/publish-retry.js';
import type { ConversationEvent } from '../contract/events.js';
import type { MemberRole } from '../contract/members.js';
import type { DatabaseHandle, Query } from '../db/client.js';
import type { ConversationKind, EventKind } from '../db/schema/index.js';
import { intArray, textArray, toNumber } from '../db/sql.js';
import type { AuthUser } from '../domain/auth-user.js';
import { notFound, unavailable } from '../domain/errors.js';
import { conversationChannel } from '../redis/names.js';
import { encodeEvent } from './event-codec.js';

export type CommittedListener = (event: ConversationEvent, actor: AuthUser) => void;

/** One event a sequenced change stores in the event log and publishes. */
export interface SequencedEvent {
  kind: EventKind;
  /** The message a message event is about; none for membership and conversation events. */
  messageId?: number | null;
  attachmentId?: number | null;
  /** The member a `member.removed` / `member.role` event is about. */
  userId?: number | null;
  /**
   * The event as published (and as the log replays it), given its seq. Membership,
   * conversation and reaction events are stored as this JSON; other message events render
   * from their rows.
   */
  event: ConversationEvent;
}

/** What a sequenced change stores in the event log, and the events it publishes. */
export interface SequencedChange<R> extends SequencedEvent {
  /** Further events of the same change, numbered `seq + 1`, `seq + 2`, … (owner succession). */
  then?: SequencedEvent[];
  result: R;
}

/** The conversation as `sequenced` locked it, with the actor's place in it. */
export interface LockedConversation {
  kind: ConversationKind;
  memberCount: number;
  messageCount: number;
  /** The seq the conversation stood at before this change. */
  lastSeq: number;
  actorRole: MemberRole;
}

/**
 * Events whose JSON the log stores as published (`conversation_events.payload`). Reaction
 * events too: a row could not tell an added reaction since removed from one never there,
 * and the removal is an event of its own.
 */
const STORED_AS_PAYLOAD: ReadonlySet<ConversationEvent['type']> = new Set([
  'reaction.added',
  'reaction.removed',
  'member.added',
  'member.removed',
  'member.role',
  'conversation.updated',
]);

/**
 * The one write path of DESIGN.md: every conversation event, whatever its entry (REST or a
 * socket) and whatever its feature (messages, attachments), takes the conversation's next
 * `seq` and writes its change and its event record in one transaction; only after commit is
 * it published on the bus and handed to the committed listeners (notifications, metrics).
 * Nothing else publishes conversation events.
 */
export interface WritePath {
  /**
   * Runs `change` in a transaction that holds the conversation's row lock (serialising its
   * writers) with `seq` the next number, after checking the actor is a member (404 otherwise).
   * `change` returns null to write no event (the seq is then not used), or its change: one
   * event, or several with consecutive seqs, all committed together and then published in
   * seq order.
   */
  sequenced<R>(
    actor: AuthUser,
    conversationId: number,
    change: (query: Query, seq: number, locked: LockedConversation) => Promise<SequencedChange<R> | null>,
  ): Promise<R | null>;
  /**
   * For writers that sequence in their own statement (the send batcher): announces an event
   * already committed, exactly as `sequenced` does after its commit.
   */
  committed(event: ConversationEvent, actor: AuthUser): void;
  /** Counts `write` among the writes `settle` waits for. */
  track<R>(write: Promise<R>): Promise<R>;
  /**
   * Throws `unavailable` once `settle` has been called (shutdown): a write that starts after
   * its snapshot could commit after the bus closed and miss its publish. Every write calls it
   * before it starts; `sequenced` does so itself.
   */
  admit(): void;
  /** Runs after each commit; a throwing listener is logged, never fatal. */
  onCommitted(listener: CommittedListener): void;
  /**
   * Resolves once every write already started has finished and every event committed so far
   * has been handed to the bus: at shutdown, before the bus closes, so that no committed
   * event misses its publish.
   */
  settle(): Promise<void>;
}

export interface WritePathOptions {
  database: DatabaseHandle;
  /** At least once: a failed publish is retried (rooms drop repeats by seq). */
  publisher: RetryingPublisher;
  logger: Logger;
}

export function createWritePath(options: WritePathOptions): WritePath {
  const { database, publisher, logger } = options;
  const listeners: CommittedListener[] = [];
  const publishing = new Set<Promise<void>>();
  const running = new Set<Promise<void>>();
  const ignore = () => {};
  let sealed = false;
  const admit = (): void => {
    if (sealed) throw unavailable('service (shutting down)');
  };

  const committed = (event: ConversationEvent, actor: AuthUser): void => {
    // Never rejects: a failed publish waits in the publisher's retry queue.
    const published: Promise<void> = publisher
      .publish(conversationChannel(event.conversation_id), encodeEvent(event), 'conversation')
      .finally(() => publishing.delete(published));
    publishing.add(published);
    for (const listener of listeners) {
      try {
        listener(event, actor);
      } catch (error) {
        logger.error({ err: error }, 'committed-event listener failed');
      }
    }
  };

  const track = <R>(write: Promise<R>): Promise<R> => {
    const done: Promise<void> = write.then(ignore, ignore).finally(() => running.delete(done));
    running.add(done);
    return write;
  };

  /**
   * Locks the conversation row and checks membership (the membership check of isMemberSql,
   * as a join that also yields the actor's role); where the conversation stands.
   */
  const lockConversation = async (query: Query, actor: AuthUser, conversationId: number): Promise<LockedConversation> => {
    const [row] = await query<{ last_seq: unknown; kind: ConversationKind; member_count: unknown; message_count: unknown; role: MemberRole }>(sql`
      select c.last_seq, c.kind, c.member_count, c.message_count, mp.role
        from conversations c join participants mp on mp.conversation_id = c.id and mp.user_id = ${actor.id}
       where c.id = ${conversationId} for no key update of c`);
    if (!row) throw notFound('conversation not found');
    return {
      kind: row.kind,
      memberCount: toNumber(row.member_count),
      messageCount: toNumber(row.message_count),
      lastSeq: toNumber(row.last_seq),
      actorRole: row.role,
    };
  };

  /**
   * The change's events, one row each, in one statement with the seq update. Their
   * `message_count` is the conversation's as locked: only sends (which sequence in their own
   * statement) change it.
   */
  const appendEvents = async (query: Query, conversationId: number, seq: number, events: SequencedEvent[], messageCount: number) => {
    events.forEach((made, index) => {
      if (made.event.seq !== seq + index) throw new Error(`event ${index} of a change has seq ${made.event.seq}, not ${seq + index}`);
    });
    const last = seq + events.length - 1;
    const nullable = (values: (number | null | undefined)[]) => textArray(values.map((v) => (v === null || v === undefined ? null : String(v))));
    await query(sql`
      with advanced as (update conversations set last_seq = ${last} where id = ${conversationId} returning id)
      insert into conversation_events (conversation_id, seq, kind, message_id, attachment_id, user_id, payload, message_count)
      select ${conversationId}, e.seq, e.kind, e.message_id, e.attachment_id, e.user_id, e.payload, ${messageCount}
        from advanced, unnest(
          ${intArray(events.map((made) => made.event.seq))}::int8[], ${intArray(events.map((made) => made.kind))}::int2[],
          ${nullable(events.map((made) => made.messageId))}::int8[], ${nullable(events.map((made) => made.attachmentId))}::int8[],
          ${nullable(events.map((made) => made.userId))}::int4[],
          ${textArray(events.map((made) => (STORED_AS_PAYLOAD.has(made.event.type) ? JSON.stringify(made.event) : null)))}::text[]
        ) as e(seq, kind, message_id, attachment_id, user_id, payload)`);
  };

  return {
    sequenced(actor, conversationId, change) {
      try {
        admit();
      } catch (error) {
        return Promise.reject(error);
      }
      return track(
        (async () => {
          const done = await database.transaction(async (query) => {
            const locked = await lockConversation(query, actor, conversationId);
            const seq = locked.lastSeq + 1;
            const made = await change(query, seq, locked);
            if (made) await appendEvents(query, conversationId, seq, [made, ...(made.then ?? [])], locked.messageCount);
            return made;
          });
          if (!done) return null;
          committed(done.event, actor);
          for (const more of done.then ?? []) committed(more.event, actor);
          return done.result;
        })(),
      );
    },
    committed,
    track,
    admit,
    onCommitted: (listener) => void listeners.push(listener),
    async settle() {
      sealed = true;
      await Promise.all(running);
      await Promise.all(publishing);
      await publisher.flush();
    },
  };
}
