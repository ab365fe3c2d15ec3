/**
 * Server → client events of both sockets, as TypeBox schemas: the service's event types and
 * the client package's (`packages/client`, generated from them at build) are both derived
 * from these, and tests validate what the service really sends against them.
 */
import { type Static, Type } from 'typebox';
import { BigId, Id, Nullable, Timestamp } from './common.js';
import { MemberRole } from './members.js';
import { Attachment, Message, type MessageView } from './messages.js';
import { Notification } from './notifications.js';
import { PresenceEvent } from './presence.js';
import { ERROR_CODES } from './socket-codes.js';

const Seq = Type.Integer({ minimum: 1, description: "per conversation, +1 with every conversation event" });

export const ChatMessageEvent = Type.Object({
  type: Type.Literal('chat.message'),
  seq: Seq,
  conversation_id: Id('conversation id'),
  message: Message,
});
export const MessageEditedEvent = Type.Object({
  type: Type.Literal('message.edited'),
  seq: Seq,
  conversation_id: Id('conversation id'),
  message: Type.Object({ id: BigId('message id'), content: Type.String(), is_edited: Type.Literal(true), edited_at: Nullable(Timestamp) }),
});
export const MessageDeletedEvent = Type.Object({
  type: Type.Literal('message.deleted'),
  seq: Seq,
  conversation_id: Id('conversation id'),
  message_id: BigId('message id'),
});
export const AttachmentAddedEvent = Type.Object({
  type: Type.Literal('attachment.added'),
  seq: Seq,
  conversation_id: Id('conversation id'),
  message_id: BigId('message id'),
  attachment: Attachment,
});
/** Someone reacted to a message with an emoji, or took their reaction back. */
const reactionEvent = <T extends 'reaction.added' | 'reaction.removed'>(type: T) =>
  Type.Object({
    type: Type.Literal(type),
    seq: Seq,
    conversation_id: Id('conversation id'),
    message_id: BigId('message id'),
    emoji: Type.String({ description: 'one emoji' }),
    user: Type.String({ description: 'username' }),
    user_id: Id('user id'),
  });
export const ReactionAddedEvent = reactionEvent('reaction.added');
export const ReactionRemovedEvent = reactionEvent('reaction.removed');
/** A user as membership events name them. */
export const EventUser = Type.Object({ id: Id('user id'), username: Type.String() });
export const MemberAddedEvent = Type.Object({
  type: Type.Literal('member.added'),
  seq: Seq,
  conversation_id: Id('conversation id'),
  users: Type.Array(EventUser, { minItems: 1 }),
  by: EventUser,
});
/** The last event a removed member's sockets get: they are closed with 4403 after it. */
export const MemberRemovedEvent = Type.Object({
  type: Type.Literal('member.removed'),
  seq: Seq,
  conversation_id: Id('conversation id'),
  user: EventUser,
  by: Type.Object({ id: Id('user id'), username: Type.String() }, { description: 'the user themselves when they left' }),
});
export const MemberRoleEvent = Type.Object({
  type: Type.Literal('member.role'),
  seq: Seq,
  conversation_id: Id('conversation id'),
  user: EventUser,
  role: MemberRole,
});
export const ConversationUpdatedEvent = Type.Object({
  type: Type.Literal('conversation.updated'),
  seq: Seq,
  conversation_id: Id('conversation id'),
  conversation: Type.Object({ id: Id('conversation id'), title: Nullable(Type.String()) }),
});
/** Live only: no `seq`, never stored, never sent back to the typist. */
export const UserTypingEvent = Type.Object({
  type: Type.Literal('user.typing'),
  user: Type.String({ description: 'username' }),
  is_typing: Type.Boolean(),
  conversation_id: Id('conversation id'),
});
/**
 * A member's read marker moved. Live only (no `seq`, never stored), to every chat socket of
 * the conversation (the reader's other ones too), at most one per user per second, and only
 * in conversations of up to RECEIPTS_MAX_MEMBERS members.
 */
export const ReadUpdatedEvent = Type.Object({
  type: Type.Literal('read.updated'),
  conversation_id: Id('conversation id'),
  user: Type.String({ description: 'username' }),
  user_id: Id('user id'),
  last_read_seq: Type.Integer({ minimum: 0 }),
});
/** The answer to a bad frame; the socket stays open. */
export const ErrorEvent = Type.Object({
  type: Type.Literal('error'),
  code: Type.Enum([...ERROR_CODES]),
  message: Type.String(),
  client_id: Type.Optional(Type.String({ description: 'of the chat_message frame refused' })),
  retry_after: Type.Optional(Type.Integer({ minimum: 0, description: 'seconds, when rate limited' })),
});
export const NotificationEvent = Type.Object({ type: Type.Literal('notification'), message: Notification });
export const NotificationReadEvent = Type.Union([
  Type.Object({ type: Type.Literal('notification.read'), id: BigId('notification id') }),
  Type.Object({ type: Type.Literal('notification.read'), all: Type.Literal(true) }),
]);

export type ChatMessageEvent = Omit<Static<typeof ChatMessageEvent>, 'message'> & { message: MessageView };
export type MessageEditedEvent = Static<typeof MessageEditedEvent>;
export type MessageDeletedEvent = Static<typeof MessageDeletedEvent>;
export type AttachmentAddedEvent = Static<typeof AttachmentAddedEvent>;
export type ReactionAddedEvent = Static<typeof ReactionAddedEvent>;
export type ReactionRemovedEvent = Static<typeof ReactionRemovedEvent>;
export type UserTypingEvent = Static<typeof UserTypingEvent>;
export type EventUser = Static<typeof EventUser>;
export type MemberAddedEvent = Static<typeof MemberAddedEvent>;
export type MemberRemovedEvent = Static<typeof MemberRemovedEvent>;
export type MemberRoleEvent = Static<typeof MemberRoleEvent>;
export type ConversationUpdatedEvent = Static<typeof ConversationUpdatedEvent>;
export type ReadUpdatedEvent = Static<typeof ReadUpdatedEvent>;
export { PresenceEvent };
export type ErrorEvent = Static<typeof ErrorEvent>;
export type NotificationEvent = Static<typeof NotificationEvent>;
export type NotificationReadEvent = Static<typeof NotificationReadEvent>;

/** Membership and conversation events: stored in the log as published (their `payload`). */
export type MembershipEvent = MemberAddedEvent | MemberRemovedEvent | MemberRoleEvent | ConversationUpdatedEvent;
/**
 * Reaction events: stored as published, replayed as `message.deleted` once their message is
 * deleted (its reactions went with it).
 */
export type ReactionEvent = ReactionAddedEvent | ReactionRemovedEvent;
/** A message event: rendered from the current rows, so deleted text never comes back. */
export type MessageEvent = ChatMessageEvent | MessageEditedEvent | MessageDeletedEvent | AttachmentAddedEvent | ReactionEvent;
/** A conversation event: numbered by `seq`, stored in the event log, published after commit. */
export type ConversationEvent = MessageEvent | MembershipEvent;
/** Everything `/ws/chat/{id}/` sends. */
export type ChatServerEvent = ConversationEvent | ReadUpdatedEvent | PresenceEvent | UserTypingEvent | ErrorEvent;
/** Everything `/ws/notifications/` sends. */
export type NotificationServerEvent = NotificationEvent | NotificationReadEvent;

/** The schemas `$ref` points at, for validating events outside Fastify (tests, clients). */
export const eventSchemaContext = { Attachment, Message, Notification };
/** Every event `/ws/chat/{id}/` sends: the one list the socket union and the AsyncAPI document use. */
export const CHAT_SERVER_EVENTS = [
  ChatMessageEvent,
  MessageEditedEvent,
  MessageDeletedEvent,
  AttachmentAddedEvent,
  ReactionAddedEvent,
  ReactionRemovedEvent,
  MemberAddedEvent,
  MemberRemovedEvent,
  MemberRoleEvent,
  ConversationUpdatedEvent,
  ReadUpdatedEvent,
  PresenceEvent,
  UserTypingEvent,
  ErrorEvent,
] as const;
/** Every event `/ws/notifications/` sends. */
export const NOTIFICATION_SERVER_EVENTS = [NotificationEvent, NotificationReadEvent] as const;
export const ChatServerEventSchema = Type.Union([...CHAT_SERVER_EVENTS]);
export const NotificationServerEventSchema = Type.Union([...NOTIFICATION_SERVER_EVENTS]);
