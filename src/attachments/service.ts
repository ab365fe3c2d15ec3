import { sql } from 'drizzle-orm';
import type { AttachmentView } from '../contract/messages.js';
import { isMemberSql } from '../conversations/membership.js';
import type { DatabaseHandle } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { isoTime, toNumber } from '../db/sql.js';
import type { AuthUser } from '../domain/auth-user.js';
import { conflict, forbidden, notFound } from '../domain/errors.js';
import { ownMessage } from '../messages/message-writes.js';
import { attachmentView, type AttachmentRecord } from '../messages/views.js';
import type { WritePath } from '../messages/write-path.js';
import type { AttachmentLinkSigner } from './links.js';

/** A file already in storage, to be attached to a message. */
export interface StoredFile {
  storageKey: string;
  filename: string;
  contentType: string;
  size: number;
}

/** A message's attachments: reading them, checking an upload may start, attaching one. */
export interface AttachmentService {
  /** 404 for non-participants and unknown messages. */
  list(user: AuthUser, conversationId: number, messageId: number): Promise<AttachmentView[]>;
  /**
   * The write checks all of this again under the conversation lock; this cheap read only
   * spares a doomed upload its bytes.
   */
  checkCanAttach(user: AuthUser, conversationId: number, messageId: number): Promise<void>;
  /** An `attachment.added` event through the one write path. */
  add(actor: AuthUser, conversationId: number, messageId: number, file: StoredFile): Promise<AttachmentView>;
}

export function createAttachmentService(options: { database: DatabaseHandle; writePath: WritePath; links: AttachmentLinkSigner }): AttachmentService {
  const { database, writePath, links } = options;
  return {
    async list(user, conversationId, messageId) {
      const rows = await database.query<AttachmentRecord & { member: boolean; message_id: unknown; [column: string]: unknown }>(sql`
        select ${isMemberSql(conversationId, user.id)} as member,
               m.id as message_id, a.id, a.filename, a.content_type, a.size, ${isoTime(sql`a.created_at`)} as uploaded_at
          from (select 1) as one
          left join messages m on m.id = ${messageId} and m.conversation_id = ${conversationId}
          left join attachments a on a.message_id = m.id and not m.is_deleted
         order by a.id`);
      const [first] = rows;
      if (!first?.member) throw notFound('conversation not found');
      if (first.message_id === null) throw notFound('message not found');
      return rows.filter((row) => row.id !== null).map((row) => attachmentView(row, links));
    },

    async checkCanAttach(user, conversationId, messageId) {
      const [row] = await database.query<{ member: boolean; sender_id: unknown; is_deleted: boolean | null }>(sql`
        select ${isMemberSql(conversationId, user.id)} as member, m.sender_id, m.is_deleted
          from (select 1) as one
          left join messages m on m.id = ${messageId} and m.conversation_id = ${conversationId}`);
      if (!row?.member) throw notFound('conversation not found');
      if (row.sender_id === null) throw notFound('message not found');
      if (toNumber(row.sender_id) !== user.id) throw forbidden('only the sender of a message may attach files to it');
      if (row.is_deleted) throw conflict('a deleted message takes no attachments');
    },

    async add(actor, conversationId, messageId, file) {
      const attachment = await writePath.sequenced(actor, conversationId, async (query, seq) => {
        const current = await ownMessage(query, actor, conversationId, messageId);
        if (current.is_deleted) throw conflict('a deleted message takes no attachments');
        const [row] = await query<AttachmentRecord & Record<string, unknown>>(sql`
          insert into attachments (message_id, uploader_id, storage_key, filename, content_type, size)
          values (${messageId}, ${actor.id}, ${file.storageKey}, ${file.filename}, ${file.contentType}, ${file.size})
          returning id, filename, content_type, size, ${isoTime(sql`created_at`)} as uploaded_at`);
        if (!row) throw new Error('insert returned no row');
        await query(sql`update messages set attachment_count = attachment_count + 1 where id = ${messageId}`);
        const view = attachmentView(row, links);
        return {
          kind: EventKind.attachmentAdded,
          messageId,
          attachmentId: toNumber(row.id),
          event: { type: 'attachment.added', seq, conversation_id: conversationId, message_id: messageId, attachment: view },
          result: view,
        };
      });
      if (!attachment) throw new Error('an attachment always writes its event');
      return attachment;
    },
  };
}
