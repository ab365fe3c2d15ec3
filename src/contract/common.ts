/**
 * Building blocks of every wire shape. The contract module depends on TypeBox and nothing of
 * the service, so the client library and the web client import it as freely as the service.
 */
import { type Static, type TInteger, type TString, Type } from 'typebox';

/** Ids are positive integers; the upper bound keeps them exact in JSON numbers and in int4/int8. */
export const Id = (description = 'id') => Type.Integer({ minimum: 1, maximum: 2_147_483_647, description });
export const BigId = (description = 'id') => Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description });

/** No NUL: PostgreSQL text cannot hold it, so it is refused at the door as bad input. */
export const Text = (options: { minLength?: number; maxLength: number; description?: string }) =>
  Type.String({ ...options, pattern: '^[^\\u0000]*$' });

export const Timestamp = Type.String({ format: 'date-time', description: 'ISO 8601 UTC' });

/**
 * A value or null, as `type: [..., "null"]` rather than `anyOf`: the response serializer
 * writes it directly, where an anyOf costs a schema validation per field per message.
 */
export const Nullable = <T extends TString | TInteger>(schema: T) =>
  Type.Unsafe<Static<T> | null>({ ...schema, type: [schema.type, 'null'] });

/** API.md's one error body, plus the request id that also appears in the logs. */
export const ErrorResponse = Type.Object(
  {
    statusCode: Type.Integer(),
    error: Type.String(),
    message: Type.String(),
    requestId: Type.Optional(Type.String()),
  },
  { $id: 'Error' },
);
export type ErrorResponse = Static<typeof ErrorResponse>;
