import { invalid } from '../domain/errors.js';

/**
 * Message text as stored: trimmed, 1..max characters (code points, so an emoji counts once),
 * no NUL (PostgreSQL text cannot hold it).
 */
export function normalizeContent(raw: unknown, max: number, field = 'content'): string {
  if (typeof raw !== 'string') throw invalid(`${field}: must be a string`);
  const text = raw.trim();
  if (text.length === 0) throw invalid(`${field}: must not be empty`);
  // length counts UTF-16 units, never fewer than code points: only long texts need counting.
  if (text.length > max && [...text].length > max) throw invalid(`${field}: at most ${max} characters`);
  if (text.includes('\u0000')) throw invalid(`${field}: must not contain NUL characters`);
  return text;
}

/** client_id: an opaque string of 1..64 characters, or absent. */
export function normalizeClientId(raw: unknown): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 64 || raw.includes('\u0000')) {
    throw invalid('client_id: a string of 1 to 64 characters');
  }
  return raw;
}
