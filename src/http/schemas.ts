import { type TSchema, Type } from 'typebox';
import { BigId, Id } from '../contract/common.js';

/** Route parameters shared by the conversation and message routes. */
export const ConversationParams = Type.Object({ id: Id('conversation id') });
export const MessageParams = Type.Object({ id: Id('conversation id'), mid: BigId('message id') });

/** The error responses a route can give, for OpenAPI. */
export const errors = (...codes: number[]): Record<number, TSchema> =>
  Object.fromEntries(codes.map((code) => [code, Type.Ref('Error')]));
