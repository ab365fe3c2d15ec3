import { type Static, Type } from 'typebox';
import { BigId, Id, Nullable, Timestamp } from './common.js';
import { pageQueryProperties } from './pagination.js';

/** `mention`: one per message that mentions the user (`@username`), in conversations of any size. */
export const NotificationKind = Type.Union([Type.Literal('conversation.added'), Type.Literal('messages.new'), Type.Literal('mention')]);
export type NotificationKind = Static<typeof NotificationKind>;

export const Notification = Type.Object(
  {
    id: BigId('notification id'),
    message: Type.String({ description: 'human-readable text' }),
    is_read: Type.Boolean(),
    timestamp: Timestamp,
    kind: NotificationKind,
    conversation_id: Nullable(Id('conversation id')),
    message_id: Nullable(BigId('newest message it speaks of')),
    count: Type.Integer({ minimum: 1, description: 'messages it stands for' }),
  },
  { $id: 'Notification' },
);
export type NotificationView = Static<typeof Notification>;

export const NotificationQuery = Type.Object({
  unread: Type.Boolean({ default: false }),
  ...pageQueryProperties({ defaultLimit: 50, maxLimit: 200 }, 'notifications', ['before']),
});
export type NotificationQuery = Static<typeof NotificationQuery>;
