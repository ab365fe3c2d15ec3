import { sql } from 'drizzle-orm';
import type { Logger } from '../domain/logger.js';
import type { RetryingPublisher } from '../bus/publish-retry.js';
import type { ConversationEvent } from '../contract/events.js';
import { isMemberSql } from '../conversations/membership.js';
import type { DatabaseHandle, Query } from '../db/client.js';
import type { EventKind } from '../db/schema/index.js';
import { toNumber } from '../db/sql.js';
import type { AuthUser } from '../domain/auth-user.js';
import { notFound, unavailable } from '../domain/errors.js';
import { conversationChannel } from '../redis/names.js';
import { encodeEvent } from './event-codec.js';

export type CommittedListener = (event: ConversationEvent, actor: AuthUser) => void;

/** What a sequenced change stores in the event log, and the event it publishes. */
export interface SequencedChange<R> {
  kind: EventKind;
  messageId: number;
  attachmentId?: number | null;
  /** The event as published (and as the log replays it), given the change's seq. */
  event: ConversationEvent;
  result: R;
}

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
   * `change` returns null to write no event (the seq is then not used), or its change.
   */
  sequenced<R>(
    actor: AuthUser,
    conversationId: number,
    change: (query: Query, seq: number) => Promise<SequencedChange<R> | null>,
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

  /** Locks the conversation row and checks membership; the next seq. */
  const lockConversation = async (query: Query, actor: AuthUser, conversationId: number): Promise<number> => {
    const [row] = await query<{ last_seq: unknown }>(sql`
      select c.last_seq from conversations c
       where c.id = ${conversationId} and ${isMemberSql(sql`c.id`, actor.id)} for update of c`);
    if (!row) throw notFound('conversation not found');
    return toNumber(row.last_seq) + 1;
  };

  const appendEvent = async (query: Query, conversationId: number, seq: number, change: SequencedChange<unknown>) => {
    await query(sql`update conversations set last_seq = ${seq} where id = ${conversationId}`);
    // Not a new message: the count stays as it is (a read marker at this seq reads it, INBOX.md).
    await query(sql`insert into conversation_events (conversation_id, seq, kind, message_id, attachment_id, message_count)
                    select ${conversationId}, ${seq}, ${change.kind}, ${change.messageId}, ${change.attachmentId ?? null}, c.message_count
                      from conversations c where c.id = ${conversationId}`);
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
            const seq = await lockConversation(query, actor, conversationId);
            const made = await change(query, seq);
            if (made) await appendEvent(query, conversationId, seq, made);
            return made;
          });
          if (!done) return null;
          committed(done.event, actor);
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
