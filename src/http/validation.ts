import { Ajv, type Options } from 'ajv';
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

/**
 * Path and query strings are text, so they are coerced ("12" → 12); JSON bodies are not:
 * `{"content": 5}` is a wrong type and gets a 400, not the string "5".
 */
export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const coercing = makeAjv({ coerceTypes: 'array' });
  const strict = makeAjv({ coerceTypes: false });
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object);
}
