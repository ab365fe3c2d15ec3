import { type TInteger, type TOptional, Type } from 'typebox';
import { BigId } from './common.js';

export interface PageBounds {
  defaultLimit: number;
  maxLimit: number;
}

type Bound = 'before' | 'after';

/**
 * The one pagination shape of every list: `limit`, and the id bounds a list supports,
 * `before` (older items) and `after` (newer items). A list answers with its page and, when
 * more exist, a `Link: <...>; rel="next"` header carrying the next page's query (RFC 8288).
 */
export function pageQueryProperties<B extends Bound>(
  { defaultLimit, maxLimit }: PageBounds,
  items: string,
  bounds: readonly B[],
): { limit: TInteger } & Record<B, TOptional<TInteger>> {
  const properties: Record<string, TInteger | TOptional<TInteger>> = {
    limit: Type.Integer({ minimum: 1, maximum: maxLimit, default: defaultLimit }),
  };
  for (const bound of bounds) {
    properties[bound] = Type.Optional(BigId(`only ${items} ${bound === 'before' ? 'older' : 'newer'} than this id`));
  }
  return properties as { limit: TInteger } & Record<B, TOptional<TInteger>>;
}
