import { sql } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import type { AuthUser } from '../auth/plugin.js';
import { conversationChannel } from '../redis/names.js';
import type { Bus } from '../bus/bus.js';
import type { DatabaseHandle, Query } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { isoTime, toNumber } from '../db/sql.js';
import { conflict, forbidden, notFound } from '../http/errors.js';
import { encodeEvent } from './codec.js';
import { SendBatcher } from './send-batcher.js';
import { normalizeClientId, normalizeContent } from './content.js';
import type { AttachmentView, ConversationEvent, MessageView } from './types.js';
import { attachmentView, messageColumns, messageView, type MessageRow } from './views.js';

export interface WritePathOptions {
  database: DatabaseHandle;
  bus: Bus;
  links: AttachmentLinkSigner;
  logger: FastifyBaseLogger;
  maxMessageLength: number;
}

export interface StoredFile {
  storageKey: string;
  filename: string;
  contentType: string;
  size: number;
}

export type CommittedListener = (event: ConversationEvent, actor: AuthUser) => void;

/**
 * The one write path of DESIGN.md. Every conversation event, whatever its entry (REST or
 * WebSocket), takes the conversation's next `seq` and writes its change and its event record
 * in one transaction; only after commit is it published on the bus. Nothing else publishes
 * conversation events.
 */
export interface WritePath {
  /** `created` is false when `client_id` matched an earlier send: that message comes back. */
  sendMessage(actor: AuthUser, conversationId: number, content: unknown, clientId?: unknown): Promise<{ message: MessageView; created: boolean }>;
  editMessage(actor: AuthUser, conversationId: number, messageId: number, content: unknown): Promise<MessageView>;
  /** Idempotent; resolves to the storage keys of the attachments it removed. */
  deleteMessage(actor: AuthUser, conversationId: number, messageId: number): Promise<string[]>;
  addAttachment(actor: AuthUser, conversationId: number, messageId: number, file: StoredFile): Promise<AttachmentView>;
  /** Runs after each commit (notifications, metrics); a throwing listener is logged, never fatal. */
  onCommitted(listener: CommittedListener): void;
  /**
   * Resolves once every write already started (a socket's queued sends included) has finished
   * and every event committed so far has been handed to the bus: at shutdown, before the bus
   * closes, so that no committed event misses its publish.
   */
  settle(): Promise<void>;
}

export function createWritePath(options: WritePathOptions): WritePath {
  const { database, bus, links, logger } = options;
  const listeners: CommittedListener[] = [];
  const batcher = new SendBatcher(database);
  const publishing = new Set<Promise<void>>();

  function committed(event: ConversationEvent, actor: AuthUser): void {
    const published: Promise<void> = bus
      .publish(conversationChannel(event.conversation_id), encodeEvent(event))
      .catch((error: unknown) => {
        // The event is durable; sockets repair the gap from PostgreSQL.
        logger.warn({ err: error, conversationId: event.conversation_id, seq: event.seq }, 'publish failed');
      })
      .finally(() => publishing.delete(published));
    publishing.add(published);
    for (const listener of listeners) {
      try {
        listener(event, actor);
      } catch (error) {
        logger.error({ err: error }, 'committed-event listener failed');
      }
    }
  }

  /** Locks the conversation row (serialising its writers) and checks membership. */
  async function lockConversation(query: Query, actor: AuthUser, conversationId: number): Promise<number> {
    const [row] = await query<{ last_seq: unknown }>(sql`
      select c.last_seq from conversations c
        join participants p on p.conversation_id = c.id and p.user_id = ${actor.id}
       where c.id = ${conversationId} for update of c`);
    if (!row) throw notFound('conversation not found');
    return toNumber(row.last_seq) + 1;
  }

  /** The message the actor may change: 404 if absent, 403 if someone else's. */
  async function ownMessage(query: Query, actor: AuthUser, conversationId: number, messageId: number) {
    const [row] = await query<{ sender_id: unknown; is_deleted: boolean }>(sql`
      select sender_id, is_deleted from messages where id = ${messageId} and conversation_id = ${conversationId}`);
    if (!row) throw notFound('message not found');
    if (toNumber(row.sender_id) !== actor.id) throw forbidden('only its sender may change a message');
    return row;
  }

  async function appendEvent(query: Query, conversationId: number, seq: number, kind: EventKind, messageId: number, attachmentId: number | null = null) {
    await query(sql`update conversations set last_seq = ${seq} where id = ${conversationId}`);
    await query(sql`insert into conversation_events (conversation_id, seq, kind, message_id, attachment_id)
                    values (${conversationId}, ${seq}, ${kind}, ${messageId}, ${attachmentId})`);
  }

  async function findByClientId(actor: AuthUser, conversationId: number, clientId: string): Promise<MessageView | undefined> {
    const [row] = await database.query<MessageRow>(sql`
      select ${messageColumns} from messages m join users u on u.id = m.sender_id
       where m.conversation_id = ${conversationId} and m.sender_id = ${actor.id} and m.client_id = ${clientId}`);
    return row && messageView(row, links);
  }

  const writes: Pick<WritePath, 'sendMessage' | 'editMessage' | 'deleteMessage' | 'addAttachment'> = {
    async sendMessage(actor, conversationId, rawContent, rawClientId) {
      const content = normalizeContent(rawContent, options.maxMessageLength);
      const clientId = normalizeClientId(rawClientId);
      const request = { conversationId, senderId: actor.id, content, clientId };
      const stored = await batcher.store(request);
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
      };
      committed({ type: 'chat.message', seq: message.seq, conversation_id: conversationId, message }, actor);
      return { message, created: true };
    },

    async editMessage(actor, conversationId, messageId, rawContent) {
      const content = normalizeContent(rawContent, options.maxMessageLength);
      const { message, seq } = await database.transaction(async (query) => {
        const seq = await lockConversation(query, actor, conversationId);
        const current = await ownMessage(query, actor, conversationId, messageId);
        if (current.is_deleted) throw conflict('a deleted message cannot be edited');
        await query(sql`update messages set content = ${content}, edited_at = now() where id = ${messageId}`);
        await appendEvent(query, conversationId, seq, EventKind.messageEdited, messageId);
        const [row] = await query<MessageRow>(sql`
          select ${messageColumns} from messages m join users u on u.id = m.sender_id where m.id = ${messageId}`);
        if (!row) throw new Error('edited message vanished');
        return { message: messageView(row, links), seq };
      });
      committed(
        {
          type: 'message.edited',
          seq,
          conversation_id: conversationId,
          message: { id: message.id, content: message.content, is_edited: true, edited_at: message.edited_at },
        },
        actor,
      );
      return message;
    },

    async deleteMessage(actor, conversationId, messageId) {
      const result = await database.transaction(async (query) => {
        const seq = await lockConversation(query, actor, conversationId);
        const current = await ownMessage(query, actor, conversationId, messageId);
        if (current.is_deleted) return null;
        // The text is gone for good; the row stays so history keeps its place.
        await query(sql`update messages set content = '', is_deleted = true, attachment_count = 0 where id = ${messageId}`);
        const removed = await query<{ storage_key: string }>(
          sql`delete from attachments where message_id = ${messageId} returning storage_key`,
        );
        await appendEvent(query, conversationId, seq, EventKind.messageDeleted, messageId);
        return { seq, keys: removed.map((r) => r.storage_key) };
      });
      if (!result) return [];
      committed({ type: 'message.deleted', seq: result.seq, conversation_id: conversationId, message_id: messageId }, actor);
      return result.keys;
    },

    async addAttachment(actor, conversationId, messageId, file) {
      const { attachment, seq } = await database.transaction(async (query) => {
        const seq = await lockConversation(query, actor, conversationId);
        const current = await ownMessage(query, actor, conversationId, messageId);
        if (current.is_deleted) throw conflict('a deleted message takes no attachments');
        const [row] = await query<{ id: unknown; filename: string; content_type: string; size: unknown; uploaded_at: string }>(sql`
          insert into attachments (message_id, uploader_id, storage_key, filename, content_type, size)
          values (${messageId}, ${actor.id}, ${file.storageKey}, ${file.filename}, ${file.contentType}, ${file.size})
          returning id, filename, content_type, size, ${isoTime(sql`created_at`)} as uploaded_at`);
        if (!row) throw new Error('insert returned no row');
        await query(sql`update messages set attachment_count = attachment_count + 1 where id = ${messageId}`);
        await appendEvent(query, conversationId, seq, EventKind.attachmentAdded, messageId, toNumber(row.id));
        return { attachment: attachmentView(row, links), seq };
      });
      committed(
        { type: 'attachment.added', seq, conversation_id: conversationId, message_id: messageId, attachment },
        actor,
      );
      return attachment;
    },
  };

  const running = new Set<Promise<void>>();
  const ignore = () => {};
  /** A write that shutdown waits for (settle), whatever its outcome. */
  const tracked =
    <A extends unknown[], R>(write: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      const result = write(...args);
      const done: Promise<void> = result.then(ignore, ignore).finally(() => running.delete(done));
      running.add(done);
      return result;
    };

  return {
    onCommitted: (listener) => void listeners.push(listener),
    sendMessage: tracked(writes.sendMessage),
    editMessage: tracked(writes.editMessage),
    deleteMessage: tracked(writes.deleteMessage),
    addAttachment: tracked(writes.addAttachment),
    async settle() {
      await Promise.all(running);
      await Promise.all(publishing);
    },
  };
}
