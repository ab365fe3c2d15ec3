import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

const base: Options = {
  // TypeBox adds its own annotation keywords; they are not validation keywords.
  strict: false,
  removeAdditional: true,
  useDefaults: true,
  allErrors: false,
};

function makeAjv(options: Options): Ajv {
  const ajv = new Ajv({ ...base, ...options });
  addFormats.default(ajv);
  return ajv;
}

/** What an integer looks like in a path or query string: decimal digits, nothing else. */
const DECIMAL = /^-?\d+$/;

/**
 * Ajv coerces any string JavaScript reads as a number: "0x10" would be conversation 16 and
 * "1e1" would be limit 10. Integers in paths and query strings must be written in decimal;
 * anything else is refused with the message Ajv gives for a non-integer.
 */
function decimalIntegers(validate: ValidateFunction, schema: unknown): ValidateFunction {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  const keys = Object.keys(properties).filter((key) => properties[key]?.type === 'integer');
  if (keys.length === 0) return validate;
  const wrapped = ((data: unknown) => {
    if (data && typeof data === 'object') {
      for (const key of keys) {
        const value = (data as Record<string, unknown>)[key];
        if (typeof value === 'string' && !DECIMAL.test(value)) {
          const error: ErrorObject = {
            instancePath: `/${key}`,
            schemaPath: `#/properties/${key}/type`,
            keyword: 'type',
            params: { type: 'integer' },
            message: 'must be integer',
          };
          wrapped.errors = [error];
          return false;
        }
      }
    }
    const valid = validate(data);
    wrapped.errors = validate.errors;
    return valid;
  }) as ValidateFunction;
  return wrapped;
}

/**
 * Path and query strings are text, so they are coerced ("12" → 12, decimal only); JSON bodies
 * are not: `{"content": 5}` is a wrong type and gets a 400, not the string "5".
 */
export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const coercing = makeAjv({ coerceTypes: 'array' });
  const strict = makeAjv({ coerceTypes: false });
  return ({ schema, httpPart }) =>
    httpPart === 'body' ? strict.compile(schema as object) : decimalIntegers(coercing.compile(schema as object), schema);
}
