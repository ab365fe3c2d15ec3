import { invalid } from '../domain/errors.js';

/** One RGI emoji (flags, keycaps, skin tones and ZWJ sequences included), nothing around it. */
// Built from a string: the `v` flag (Node 20+) is newer than the compiler's target.
const ONE_EMOJI = new RegExp('^\\p{RGI_Emoji}$', 'v');
const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });
/** The longest RGI sequences (family ZWJ sequences) are under 40 UTF-16 units. */
const MAX_EMOJI_UNITS = 64;

/**
 * A reaction's emoji as stored: exactly one grapheme that is one emoji of Unicode's
 * recommended set. Text, two emoji and markup are refused (400). A bare pictograph without
 * its emoji presentation selector (`❤`) is taken as its emoji form (`❤️`), so the two
 * spellings are one reaction.
 */
export function normalizeEmoji(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_EMOJI_UNITS) throw invalid('emoji: must be one emoji');
  const text = raw.normalize('NFC');
  const segments = [...graphemes.segment(text)];
  if (segments.length !== 1) throw invalid('emoji: must be one emoji');
  if (ONE_EMOJI.test(text)) return text;
  const presented = `${text}\uFE0F`;
  if (!text.includes('\uFE0F') && ONE_EMOJI.test(presented)) return presented;
  throw invalid('emoji: must be one emoji');
}
