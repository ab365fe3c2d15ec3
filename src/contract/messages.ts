import { type Static, Type } from 'typebox';
import { BigId, Id, Nullable, Text, Timestamp } from './common.js';
import { pageQueryProperties } from './pagination.js';

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
    mentions: Type.Array(Type.String(), {
      description: 'usernames of the members the text mentions (`@username`, case-insensitive, not inside a word); empty once deleted',
    }),
  },
  { $id: 'Message' },
);

export type AttachmentView = Static<typeof Attachment>;
/** `Message` refers to `Attachment` by `$ref` (one schema in OpenAPI); the static type spells it out. */
export type MessageView = Omit<Static<typeof Message>, 'attachments'> & { attachments: AttachmentView[] };

/** Length limits that depend on configuration are checked in the service, after trimming. */
export const ClientId = Text({ minLength: 1, maxLength: 64, description: 'makes the send idempotent' });
export const SendMessage = Type.Object({ content: Type.String(), client_id: Type.Optional(ClientId) });
export const EditMessage = Type.Object({ content: Type.String() });

export const MessagePageQuery = Type.Object(pageQueryProperties({ defaultLimit: 50, maxLimit: 200 }, 'messages', ['before', 'after']));
export type MessagePageQuery = Static<typeof MessagePageQuery>;
