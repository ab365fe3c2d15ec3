import { type Static, Type } from 'typebox';
import { Compile } from 'typebox/compile';
import { BigId } from '../http/schemas.js';
import { ClientId } from '../messages/schemas.js';
import type { ErrorCode } from './events.js';

/**
 * Client → server frames of `/ws/chat/{id}/` (API.md, with the seed's names). Lengths that
 * depend on configuration (message text) are checked by the write path after trimming.
 */
export const ChatMessageFrame = Type.Object({
  type: Type.Literal('chat_message'),
  message: Type.String(),
  client_id: Type.Optional(ClientId),
});
export const EditMessageFrame = Type.Object({
  type: Type.Literal('edit_message'),
  message_id: BigId('message id'),
  content: Type.String(),
});
export const DeleteMessageFrame = Type.Object({ type: Type.Literal('delete_message'), message_id: BigId('message id') });
export const TypingFrame = Type.Object({ type: Type.Literal('typing'), is_typing: Type.Boolean() });

export type ChatMessageFrame = Static<typeof ChatMessageFrame>;
export type EditMessageFrame = Static<typeof EditMessageFrame>;
export type DeleteMessageFrame = Static<typeof DeleteMessageFrame>;
export type TypingFrame = Static<typeof TypingFrame>;
export type ClientFrame = ChatMessageFrame | EditMessageFrame | DeleteMessageFrame | TypingFrame;

const validators = {
  chat_message: Compile(ChatMessageFrame),
  edit_message: Compile(EditMessageFrame),
  delete_message: Compile(DeleteMessageFrame),
  typing: Compile(TypingFrame),
} as const;

export type { ErrorCode } from './events.js';

export class FrameError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Parses and validates one frame; throws `FrameError` with a message naming the field. */
export function parseFrame(text: string): ClientFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FrameError('bad_json', 'frame is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FrameError('invalid_frame', 'frame must be a JSON object with a "type"');
  }
  const type = (value as { type?: unknown }).type;
  const validator = typeof type === 'string' && Object.hasOwn(validators, type) ? validators[type as keyof typeof validators] : undefined;
  if (!validator) {
    throw new FrameError('unknown_type', `unknown frame type ${JSON.stringify(type)}; expected chat_message, edit_message, delete_message or typing`);
  }
  if (!validator.Check(value)) {
    const [first] = validator.Errors(value);
    const field = first?.instancePath.slice(1) || (first?.params as { requiredProperties?: string[] } | undefined)?.requiredProperties?.[0] || 'frame';
    throw new FrameError('invalid_frame', `${field}: ${first?.message ?? 'invalid'}`);
  }
  return value as ClientFrame;
}

/** Server → client error event. */
export const errorEvent = (code: ErrorCode, message: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ type: 'error', code, message, ...extra });
