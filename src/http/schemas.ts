import { type TSchema, Type } from 'typebox';
import { BigId, Id } from '../contract/common.js';

/** Route parameters shared by the conversation and message routes. */
export const ConversationParams = Type.Object({ id: Id('conversation id') });
export const MessageParams = Type.Object({ id: Id('conversation id'), mid: BigId('message id') });
/** The emoji is checked by the service (one emoji grapheme); the length bound keeps junk out early. */
export const ReactionParams = Type.Object({ ...MessageParams.properties, emoji: Type.String({ minLength: 1, maxLength: 64, description: 'one emoji, URL-encoded' }) });

/** The error responses a route can give, for OpenAPI. */
export const errors = (...codes: number[]): Record<number, TSchema> =>
  Object.fromEntries(codes.map((code) => [code, Type.Ref('Error')]));
