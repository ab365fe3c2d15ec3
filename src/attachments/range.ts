import type { ByteRange } from '../storage/storage.js';

/**
 * RFC 9110 `Range` for one byte range: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
 * - `null`: no range to honour (absent, malformed, another unit, or several ranges, which a
 *   server may answer with the whole representation);
 * - `'unsatisfiable'`: a well-formed range that selects nothing (416);
 * - otherwise the inclusive range, clamped to the object.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  if (header === undefined) return null;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return null;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return null;
  if (first === '') {
    // Suffix: the last n bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? Number.POSITIVE_INFINITY : Number(last);
  if (end < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}
