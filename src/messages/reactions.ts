import { sql } from 'drizzle-orm';
import type { ReactionAddedEvent, ReactionRemovedEvent } from '../contract/events.js';
import type { Query } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { toNumber } from '../db/sql.js';
import type { AuthUser } from '../domain/auth-user.js';
import { conflict, notFound } from '../domain/errors.js';
import { normalizeEmoji } from './emoji.js';
import type { WritePath } from './write-path.js';

/** Different emoji one message takes at most (API.md). */
export const MAX_REACTIONS_PER_MESSAGE = 20;

/** Reacting to messages: `reaction.added` / `reaction.removed` events of the one write path. */
export interface Reactions {
  /** Idempotent: true when the reaction was added now, false when it was there already. */
  react(actor: AuthUser, conversationId: number, messageId: number, emoji: unknown): Promise<boolean>;
  /** Idempotent: true when a reaction was removed now. */
  unreact(actor: AuthUser, conversationId: number, messageId: number, emoji: unknown): Promise<boolean>;
}

/** The message a reaction is about, under the conversation's lock: 404 if not of this conversation, 409 if deleted. */
async function liveMessage(query: Query, conversationId: number, messageId: number): Promise<void> {
  const [row] = await query<{ is_deleted: boolean }>(
    sql`select is_deleted from messages where id = ${messageId} and conversation_id = ${conversationId}`,
  );
  if (!row) throw notFound('message not found');
  if (row.is_deleted) throw conflict('a deleted message takes no reactions');
}

/**
 * Each change runs under the conversation's row lock (the write path), which every writer of
 * the message's reactions takes: concurrent reactions from any replicas are serialised, so
 * the count and the 20-emoji limit hold, and a repeat finds its row and writes no event.
 */
export function createReactions({ writePath }: { writePath: WritePath }): Reactions {
  const eventOf = <T extends 'reaction.added' | 'reaction.removed'>(
    type: T,
    seq: number,
    actor: AuthUser,
    conversationId: number,
    messageId: number,
    emoji: string,
  ) => ({ type, seq, conversation_id: conversationId, message_id: messageId, emoji, user: actor.username, user_id: actor.id });

  return {
    async react(actor, conversationId, messageId, rawEmoji) {
      const emoji = normalizeEmoji(rawEmoji);
      const added = await writePath.sequenced(actor, conversationId, async (query, seq) => {
        await liveMessage(query, conversationId, messageId);
        const [state] = await query<{ mine: boolean; emoji_taken: boolean; kinds: unknown }>(sql`
          select exists (select 1 from message_reactions where message_id = ${messageId} and emoji = ${emoji} and user_id = ${actor.id}) as mine,
                 exists (select 1 from message_reactions where message_id = ${messageId} and emoji = ${emoji}) as emoji_taken,
                 (select count(distinct emoji) from message_reactions where message_id = ${messageId}) as kinds`);
        if (state?.mine) return null;
        if (!state?.emoji_taken && toNumber(state?.kinds) >= MAX_REACTIONS_PER_MESSAGE) {
          throw conflict(`a message takes at most ${MAX_REACTIONS_PER_MESSAGE} different reactions`);
        }
        await query(sql`
          with added as (insert into message_reactions (message_id, emoji, user_id) values (${messageId}, ${emoji}, ${actor.id}))
          update messages set reaction_count = reaction_count + 1 where id = ${messageId}`);
        const event: ReactionAddedEvent = eventOf('reaction.added', seq, actor, conversationId, messageId, emoji);
        return { kind: EventKind.reactionAdded, messageId, event, result: true };
      });
      return added ?? false;
    },

    async unreact(actor, conversationId, messageId, rawEmoji) {
      const emoji = normalizeEmoji(rawEmoji);
      const removed = await writePath.sequenced(actor, conversationId, async (query, seq) => {
        const [row] = await query<{ id: unknown }>(
          sql`select id from messages where id = ${messageId} and conversation_id = ${conversationId}`,
        );
        if (!row) throw notFound('message not found');
        // A deleted message has lost its reactions already: nothing to remove, no event.
        const gone = await query(sql`
          delete from message_reactions where message_id = ${messageId} and emoji = ${emoji} and user_id = ${actor.id} returning 1 as one`);
        if (gone.length === 0) return null;
        await query(sql`update messages set reaction_count = reaction_count - 1 where id = ${messageId}`);
        const event: ReactionRemovedEvent = eventOf('reaction.removed', seq, actor, conversationId, messageId, emoji);
        return { kind: EventKind.reactionRemoved, messageId, event, result: true };
      });
      return removed ?? false;
    },
  };
}
