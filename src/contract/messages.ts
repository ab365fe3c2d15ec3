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

/** A reaction of a message: one emoji, how many reacted with it, and the first ten of them. */
export const Reaction = Type.Object({
  emoji: Type.String({ description: 'one emoji' }),
  count: Type.Integer({ minimum: 1 }),
  users: Type.Array(Type.String({ description: 'username' }), { maxItems: 10, description: 'the first ten to react, in order' }),
});
/** The message a reply answers, as it is now: no text once it is deleted. */
export const ReplyPreview = Type.Object({
  id: BigId('message id'),
  sender: Type.String({ description: 'username' }),
  content: Type.String({ maxLength: 200, description: 'its first 200 characters; empty once deleted' }),
  is_deleted: Type.Boolean(),
});

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
    // type [object, null], not an anyOf: every message of a history page is serialised with it
    // (an anyOf costs a validation per message; see Nullable in common.ts).
    reply_to: Type.Unsafe<Static<typeof ReplyPreview> | null>({ ...ReplyPreview, type: ['object', 'null'], description: 'the message this one answers' }),
    reactions: Type.Array(Reaction, {
      description: 'oldest first; in a chat.message event always [] (the reaction events that follow it build them)',
    }),
    mentions: Type.Array(Type.String(), {
      description: 'usernames of the members the text mentions (`@username`, case-insensitive, not inside a word); empty once deleted',
    }),
  },
  { $id: 'Message' },
);

export type AttachmentView = Static<typeof Attachment>;
export type ReactionView = Static<typeof Reaction>;
export type ReplyPreviewView = Static<typeof ReplyPreview>;
/** `Message` refers to `Attachment` by `$ref` (one schema in OpenAPI); the static type spells it out. */
export type MessageView = Omit<Static<typeof Message>, 'attachments'> & { attachments: AttachmentView[] };

/** Length limits that depend on configuration are checked in the service, after trimming. */
export const ClientId = Text({ minLength: 1, maxLength: 64, description: 'makes the send idempotent' });
/** The message a send answers: one of the same conversation, not deleted. */
export const ReplyTo = BigId('the message this one answers, of the same conversation');
export const SendMessage = Type.Object({ content: Type.String(), client_id: Type.Optional(ClientId), reply_to: Type.Optional(ReplyTo) });
export const EditMessage = Type.Object({ content: Type.String() });

export const MessagePageQuery = Type.Object(pageQueryProperties({ defaultLimit: 50, maxLimit: 200 }, 'messages', ['before', 'after']));
export type MessagePageQuery = Static<typeof MessagePageQuery>;

/** An earlier version of an edited message: its text and when that text was written. */
export const MessageVersion = Type.Object({
  content: Type.String(),
  edited_at: Type.String({ format: 'date-time', description: 'when this version was written (the first: when the message was sent)' }),
});
export type MessageVersionView = Static<typeof MessageVersion>;

/** Search: every word of `q` (the last one also as a prefix of three or more characters). */
export const SEARCH_MAX_QUERY_LENGTH = 256;
export const SEARCH_MAX_WORDS = 8;
export const SearchQuery = Type.Object({
  q: Type.String({ minLength: 1, maxLength: SEARCH_MAX_QUERY_LENGTH, description: `words to find, at most ${SEARCH_MAX_WORDS}` }),
  conversation_id: Type.Optional(Id('only in this conversation')),
  ...pageQueryProperties({ defaultLimit: 20, maxLimit: 100 }, 'messages', ['before']),
});
export type SearchQuery = Static<typeof SearchQuery>;
