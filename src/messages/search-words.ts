/**
 * The words of a text as the search index stores them and as a query looks them up: the
 * same function on both sides, in the application, so matching does not depend on the
 * database's locale (PGlite and PostgreSQL alike).
 *
 * Normalisation: NFKC (full-width and compatibility forms), lower case, Arabic yeh and kaf
 * as their Persian letters, Arabic-Indic and Persian digits as ASCII ones, and no tatweel,
 * no diacritics (Arabic harakat, Latin accents: NFD, combining marks dropped). A zero-width
 * non-joiner (U+200C) or joiner inside a word belongs to the word and is dropped, so
 * `می‌خواهم` and `میخواهم` are the same word. Words are runs of letters and digits.
 */

/** Longer words are cut here, in the index and in queries alike. */
export const MAX_WORD_LENGTH = 40;
/** Distinct words indexed per message at most (a 4000-character message has a few hundred). */
export const MAX_WORDS_PER_MESSAGE = 256;

const ARABIC_TO_PERSIAN: Record<string, string> = { '\u064A': '\u06CC', '\u0649': '\u06CC', '\u0643': '\u06A9', '\u0629': '\u0647' };
const LETTER_MAP = /[\u064A\u0649\u0643\u0629]/g;
const DIGITS = /[\u0660-\u0669\u06F0-\u06F9]/g;
/** Tatweel, zero-width non-joiner and joiner. */
const JOINERS = /[\u0640\u200C\u200D]/g;
const MARKS = /\p{M}/gu;
const WORD = /[\p{L}\p{N}]+/gu;

export function normalizeText(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(LETTER_MAP, (c) => ARABIC_TO_PERSIAN[c]!)
    .replace(DIGITS, (c) => String((c.charCodeAt(0) - (c >= '\u06F0' ? 0x06f0 : 0x0660)) % 10))
    .replace(JOINERS, '')
    .normalize('NFD')
    .replace(MARKS, '')
    .normalize('NFC');
}

/** The words of `text` in order of first appearance, each once; at most `max`. */
export function wordsOf(text: string, max = MAX_WORDS_PER_MESSAGE): string[] {
  const words = new Set<string>();
  for (const [match] of normalizeText(text).matchAll(WORD)) {
    words.add([...match].slice(0, MAX_WORD_LENGTH).join(''));
    if (words.size >= max) break;
  }
  return [...words];
}
