import { type Static, Type } from 'typebox';
import { Id, Nullable, Timestamp } from './common.js';
import { Message, type MessageView } from './messages.js';

/** The longest a conversation object's `participants` gets; `member_count` says how many there are. */
export const MAX_LISTED_PARTICIPANTS = 100;

/**
 * The newest message, or null, as `type: ["object", "null"]` over Message's own properties
 * rather than an anyOf of a `$ref` and null: the response serializer then writes it directly,
 * where an anyOf costs a validation of the whole message per item (a list page has up to 500).
 */
const LastMessage = Type.Unsafe<MessageView | null>({
  type: ['object', 'null'],
  properties: Message.properties,
  required: Message.required,
  description: 'the newest message as history renders it (a deleted one as deleted), or null',
});

export const Conversation = Type.Object(
  {
    id: Id('conversation id'),
    participants: Type.Array(Type.String(), {
      maxItems: MAX_LISTED_PARTICIPANTS,
      description: `usernames: the caller first, then the others in joining order; at most ${MAX_LISTED_PARTICIPANTS} (member_count says how many there are)`,
    }),
    created_at: Timestamp,
    last_message_at: Nullable(Timestamp),
    /** The newest event's seq: a client can resume its socket from here. */
    last_seq: Type.Integer({ minimum: 0 }),
    title: Nullable(Type.String({ description: '1-100 characters; always null for a direct conversation' })),
    kind: Type.Union([Type.Literal('direct'), Type.Literal('group')]),
    member_count: Type.Integer({ minimum: 0 }),
    last_message: LastMessage,
    /** The caller's read marker: only moves forward, never past `last_seq`. */
    last_read_seq: Type.Integer({ minimum: 0 }),
    /** Messages from others, not deleted, with a seq above `last_read_seq`. */
    unread_count: Type.Integer({ minimum: 0 }),
  },
  { $id: 'Conversation' },
);
/** `Conversation` refers to `Message` by `$ref`; the static type spells it out. */
export type ConversationView = Omit<Static<typeof Conversation>, 'last_message'> & { last_message: MessageView | null };


/**
 * The inbox list: newest activity first. `before` is the opaque cursor of a `Link: <...>;
 * rel="next"` header (a malformed one is a 400); clients pass it back untouched.
 */
export const ConversationListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
  before: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'the cursor of the next page (from the Link header)' })),
});
export type ConversationListQuery = Static<typeof ConversationListQuery>;

/** `POST /api/conversations/{id}/read/` and the `read` frame: the seq read up to (clamped to `last_seq`). */
export const ReadSeq = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'seq read up to; past last_seq means last_seq' });
export const MarkRead = Type.Object({ seq: ReadSeq });
export type MarkRead = Static<typeof MarkRead>;
export const ReadState = Type.Object({
  last_read_seq: Type.Integer({ minimum: 0 }),
  unread_count: Type.Integer({ minimum: 0 }),
});
export type ReadStateView = Static<typeof ReadState>;

