import { sql } from 'drizzle-orm';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import type { MessageView } from '../contract/messages.js';
import type { DatabaseHandle, Query } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { toNumber } from '../db/sql.js';
import type { AuthUser } from '../domain/auth-user.js';
import { conflict, forbidden, notFound } from '../domain/errors.js';
import { normalizeClientId, normalizeContent } from './content.js';
import { createReactions, type Reactions } from './reactions.js';
import { normalizeReplyTo, replyPreviewFor } from './replies.js';
import { encodeCandidates, mentionCandidates } from './mentions.js';
import { mentionsSql } from './mentions-sql.js';
import { SendBatcher, type SendBatcherObserver } from './send-batcher.js';
import { messageColumns, messageView, type MessageRecord } from './views.js';
import type { WritePath } from './write-path.js';

/** Sending, editing, deleting and reacting to messages: each a conversation event of the one write path. */
export interface MessageWrites extends Reactions {
  /**
   * `created` is false when `client_id` matched an earlier send: that message comes back.
   * `replyTo`: the id of a message of the same conversation it answers.
   */
  send(
    actor: AuthUser,
    conversationId: number,
    content: unknown,
    clientId?: unknown,
    replyTo?: unknown,
  ): Promise<{ message: MessageView; created: boolean }>;
  edit(actor: AuthUser, conversationId: number, messageId: number, content: unknown): Promise<MessageView>;
  /** Idempotent; resolves to the storage keys of the attachments it removed. */
  delete(actor: AuthUser, conversationId: number, messageId: number): Promise<string[]>;
}

export interface MessageWritesOptions {
  writePath: WritePath;
  database: DatabaseHandle;
  links: AttachmentLinkSigner;
  maxMessageLength: number;
  /** Batch sizes, queue depth and statement latency of sends (metrics). */
  sendObserver?: SendBatcherObserver;
}

/** The message the actor may change, locked by the caller's transaction: 404 if absent, 403 if someone else's. */
export async function ownMessage(query: Query, actor: AuthUser, conversationId: number, messageId: number) {
  const [row] = await query<{ sender_id: unknown; is_deleted: boolean }>(sql`
    select sender_id, is_deleted from messages where id = ${messageId} and conversation_id = ${conversationId}`);
  if (!row) throw notFound('message not found');
  if (toNumber(row.sender_id) !== actor.id) throw forbidden('only its sender may change a message');
  return row;
}

/** A message of the conversation as it is now (reactions included), or undefined. */
export async function findMessage(
  database: DatabaseHandle,
  links: AttachmentLinkSigner,
  conversationId: number,
  messageId: number,
): Promise<MessageView | undefined> {
  const [row] = await database.query<MessageRecord>(sql`
    select ${messageColumns} from messages m join users u on u.id = m.sender_id
     where m.id = ${messageId} and m.conversation_id = ${conversationId}`);
  return row && messageView(row, links);
}

export function createMessageWrites(options: MessageWritesOptions): MessageWrites {
  const { writePath, database, links } = options;
  const batcher = new SendBatcher(database, options.sendObserver);

  async function findByClientId(actor: AuthUser, conversationId: number, clientId: string): Promise<MessageView | undefined> {
    const [row] = await database.query<MessageRecord>(sql`
      select ${messageColumns} from messages m join users u on u.id = m.sender_id
       where m.conversation_id = ${conversationId} and m.sender_id = ${actor.id} and m.client_id = ${clientId}`);
    return row && messageView(row, links);
  }

  async function send(actor: AuthUser, conversationId: number, rawContent: unknown, rawClientId?: unknown, rawReplyTo?: unknown) {
    const content = normalizeContent(rawContent, options.maxMessageLength);
    const clientId = normalizeClientId(rawClientId);
    const replyToId = normalizeReplyTo(rawReplyTo);
    writePath.admit();
    // A reply costs one more statement (the original's check and preview); other sends none.
    const replyTo = replyToId === null ? null : await replyPreviewFor(database, actor.id, conversationId, replyToId);
    const mentionNames = encodeCandidates(mentionCandidates(content));
    const stored = await batcher.store({ conversationId, senderId: actor.id, content, clientId, replyToId, mentionNames });
    if (!stored) {
      // Skipped: a client_id used before (that message comes back), or not a participant.
      const earlier = clientId === null ? undefined : await findByClientId(actor, conversationId, clientId);
      if (!earlier) throw notFound('conversation not found');
      return { message: earlier, created: false };
    }
    const message: MessageView = {
      id: stored.id,
      conversation_id: conversationId,
      sender: actor.username,
      sender_id: actor.id,
      content,
      timestamp: stored.timestamp,
      is_edited: false,
      is_deleted: false,
      edited_at: null,
      client_id: clientId,
      seq: stored.seq,
      attachments: [],
      reply_to: replyTo,
      reactions: [],
      mentions: stored.mentions,
    };
    writePath.committed({ type: 'chat.message', seq: message.seq, conversation_id: conversationId, message }, actor);
    return { message, created: true };
  }

  return {
    send: (actor, conversationId, content, clientId, replyTo) => writePath.track(send(actor, conversationId, content, clientId, replyTo)),
    ...createReactions({ writePath }),

    async edit(actor, conversationId, messageId, rawContent) {
      const content = normalizeContent(rawContent, options.maxMessageLength);
      const edited = await writePath.sequenced(actor, conversationId, async (query, seq) => {
        const current = await ownMessage(query, actor, conversationId, messageId);
        if (current.is_deleted) throw conflict('a deleted message cannot be edited');
        // The version it replaces is kept (its history); the search index follows the edit's
        // event (search-indexer.ts). The new text's mentions replace the old ones (no new
        // notifications: API.md speaks of sends).
        const names = encodeCandidates(mentionCandidates(content));
        await query(sql`
          with kept as (
            insert into message_versions (message_id, content, written_at)
            select id, content, coalesce(edited_at, created_at) from messages where id = ${messageId})
          update messages set content = ${content}, edited_at = now(), mentions = ${mentionsSql(sql`messages.conversation_id`, sql`${names}::text`)}
           where id = ${messageId}`);
        const [row] = await query<MessageRecord>(sql`
          select ${messageColumns} from messages m join users u on u.id = m.sender_id where m.id = ${messageId}`);
        if (!row) throw new Error('edited message vanished');
        const message = messageView(row, links);
        return {
          kind: EventKind.messageEdited,
          messageId,
          event: {
            type: 'message.edited',
            seq,
            conversation_id: conversationId,
            message: { id: message.id, content: message.content, is_edited: true, edited_at: message.edited_at },
          },
          result: message,
        };
      });
      if (!edited) throw new Error('an edit always writes its event');
      return edited;
    },

    async delete(actor, conversationId, messageId) {
      const keys = await writePath.sequenced(actor, conversationId, async (query, seq) => {
        const current = await ownMessage(query, actor, conversationId, messageId);
        if (current.is_deleted) return null;
        // The text is gone for good, with its earlier versions, its words, its reactions and its
        // mentions; the row stays so history keeps its place.
        await query(sql`
          with versions as (delete from message_versions where message_id = ${messageId}),
          words as (delete from message_words where message_id = ${messageId}),
          reactions as (delete from message_reactions where message_id = ${messageId})
          update messages set content = '', is_deleted = true, attachment_count = 0, reaction_count = 0, mentions = null where id = ${messageId}`);
        const removed = await query<{ storage_key: string }>(
          sql`delete from attachments where message_id = ${messageId} returning storage_key`,
        );
        return {
          kind: EventKind.messageDeleted,
          messageId,
          event: { type: 'message.deleted', seq, conversation_id: conversationId, message_id: messageId },
          result: removed.map((r) => r.storage_key),
        };
      });
      return keys ?? [];
    },
  };
}
