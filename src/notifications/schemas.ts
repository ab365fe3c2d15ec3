import { Type } from 'typebox';
import { BigId, Id, Nullable, Timestamp } from '../http/schemas.js';

export const Notification = Type.Object(
  {
    id: BigId('notification id'),
    message: Type.String({ description: 'human-readable text' }),
    is_read: Type.Boolean(),
    timestamp: Timestamp,
    kind: Type.Union([Type.Literal('conversation.added'), Type.Literal('messages.new')]),
    conversation_id: Nullable(Id('conversation id')),
    message_id: Nullable(BigId('newest message it speaks of')),
    count: Type.Integer({ minimum: 1, description: 'messages it stands for' }),
  },
  { $id: 'Notification' },
);

export const NotificationQuery = Type.Object({
  unread: Type.Boolean({ default: false }),
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  before: Type.Optional(BigId('only notifications older than this id')),
});
