import { Type } from 'typebox';
import { BigId, Id, Nullable, Text, Timestamp } from '../http/schemas.js';

export const Attachment = Type.Object(
  {
    id: BigId('attachment id'),
    file: Type.String({ description: 'signed, expiring absolute URL' }),
    uploaded_at: Timestamp,
    filename: Type.String(),
    content_type: Type.String(),
    size: Type.Integer({ minimum: 0 }),
  },
  { $id: 'Attachment' },
);

export const Message = Type.Object(
  {
    id: BigId('message id'),
    conversation_id: Id('conversation id'),
    sender: Type.String({ description: 'username' }),
    sender_id: Id('user id'),
    content: Type.String({ description: 'empty once deleted' }),
    timestamp: Timestamp,
    is_edited: Type.Boolean(),
    is_deleted: Type.Boolean(),
    edited_at: Nullable(Timestamp),
    client_id: Nullable(Type.String()),
    seq: Type.Integer({ minimum: 1, description: 'seq of the event that created it' }),
    attachments: Type.Array(Type.Ref('Attachment')),
  },
  { $id: 'Message' },
);

/** Length limits that depend on configuration are checked in the service, after trimming. */
export const ClientId = Text({ minLength: 1, maxLength: 64, description: 'makes the send idempotent' });
export const SendMessage = Type.Object({ content: Type.String(), client_id: Type.Optional(ClientId) });
export const EditMessage = Type.Object({ content: Type.String() });

export const MessagePage = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  before: Type.Optional(BigId('only messages older than this id')),
  after: Type.Optional(BigId('only messages newer than this id')),
});
