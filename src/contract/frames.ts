import { type Static, Type } from 'typebox';
import { BigId } from './common.js';
import { ReadSeq } from './conversations.js';
import { ClientId, ReplyTo } from './messages.js';

/**
 * Client → server frames of `/ws/chat/{id}/` (API.md, with the seed's names). Lengths that
 * depend on configuration (message text) are checked by the service after trimming.
 */
export const ChatMessageFrame = Type.Object({
  type: Type.Literal('chat_message'),
  message: Type.String(),
  client_id: Type.Optional(ClientId),
  reply_to: Type.Optional(ReplyTo),
});
export const EditMessageFrame = Type.Object({
  type: Type.Literal('edit_message'),
  message_id: BigId('message id'),
  content: Type.String(),
});
export const DeleteMessageFrame = Type.Object({ type: Type.Literal('delete_message'), message_id: BigId('message id') });
export const TypingFrame = Type.Object({ type: Type.Literal('typing'), is_typing: Type.Boolean() });
/** Reacts to a message with one emoji (idempotent); answered by `reaction.added`, or nothing when it was there. */
export const ReactFrame = Type.Object({ type: Type.Literal('react'), message_id: BigId('message id'), emoji: Type.String({ maxLength: 64 }) });
/** Takes a reaction back (idempotent); answered by `reaction.removed`, or nothing when there was none. */
export const UnreactFrame = Type.Object({ type: Type.Literal('unreact'), message_id: BigId('message id'), emoji: Type.String({ maxLength: 64 }) });
/** Moves the read marker (as `POST /read/`); answered by the `read.updated` receipt when receipts are on. */
export const ReadFrame = Type.Object({ type: Type.Literal('read'), seq: ReadSeq });

export type ChatMessageFrame = Static<typeof ChatMessageFrame>;
export type EditMessageFrame = Static<typeof EditMessageFrame>;
export type DeleteMessageFrame = Static<typeof DeleteMessageFrame>;
export type TypingFrame = Static<typeof TypingFrame>;
export type ReadFrame = Static<typeof ReadFrame>;
export type ReactFrame = Static<typeof ReactFrame>;
export type UnreactFrame = Static<typeof UnreactFrame>;
export type ClientFrame = ChatMessageFrame | EditMessageFrame | DeleteMessageFrame | TypingFrame | ReadFrame | ReactFrame | UnreactFrame;

/** Every frame type, keyed by its `type`. */
export const CLIENT_FRAMES = {
  chat_message: ChatMessageFrame,
  edit_message: EditMessageFrame,
  delete_message: DeleteMessageFrame,
  typing: TypingFrame,
  read: ReadFrame,
  react: ReactFrame,
  unreact: UnreactFrame,
} as const;
