/**
 * `@` completion for a message box: the `@prefix` being typed at the caret, the members it
 * may complete to, and the text once one is chosen. A query starts where the service's rule
 * lets a mention start (see mentions.ts): never inside a word, so typing an e-mail address
 * offers nothing.
 */

/** The `@prefix` being typed. */
export interface MentionQuery {
  /** Where its `@` stands. */
  start: number;
  /** Where the name being typed ends (the caret, or past it when the caret stands inside the name): a choice replaces `start..end`. */
  end: number;
  /** What was typed between `@` and the caret, as typed. */
  prefix: string;
}

export interface MentionCompletion<T> {
  query: MentionQuery;
  /** The best matches first (see `rankMentionMatches`), at most `limit`. */
  matches: T[];
}

export interface MentionCompletionOptions<T> {
  /** How many matches at most (default `DEFAULT_MENTION_MATCHES`, never more than `MAX_MENTION_MATCHES`). */
  limit?: number;
  /** Members not to offer, e.g. the writer themself (mentioning oneself notifies nobody). */
  exclude?: (member: T) => boolean;
}

/** A popup's worth. */
export const DEFAULT_MENTION_MATCHES = 8;
/** A list longer than this is no help while typing, and ranking stays cheap per keystroke. */
export const MAX_MENTION_MATCHES = 50;
/** API.md: usernames are at most 32 characters, so a longer run after `@` is no username being typed. */
const MAX_USERNAME = 32;

const NAME_CHAR = /^[A-Za-z0-9_.-]$/;
/** What may not stand right before a mention's `@` (the service's rule, contract/mention-syntax.ts). */
const INSIDE_A_WORD = /[\p{L}\p{N}_.@-]$/u;
/** Where a username's later parts start (`smith` in `john_smith`). */
const PART_START = /[_.-]/;

/** The `@prefix` being typed at `caret` in `text`, or undefined where no mention is being typed. */
export function mentionQueryAt(text: string, caret: number): MentionQuery | undefined {
  if (!Number.isInteger(caret) || caret < 0 || caret > text.length) return undefined;
  let nameStart = caret;
  while (nameStart > 0 && NAME_CHAR.test(text[nameStart - 1]!)) nameStart--;
  const at = nameStart - 1;
  if (at < 0 || text[at] !== '@' || caret - nameStart > MAX_USERNAME) return undefined;
  // Two code units: the character before may be outside the BMP (a surrogate pair).
  if (INSIDE_A_WORD.test(text.slice(Math.max(0, at - 2), at))) return undefined;
  let end = caret;
  while (end < text.length && NAME_CHAR.test(text[end]!)) end++;
  return { start: at, end, prefix: text.slice(nameStart, caret) };
}

/**
 * The members whose username `prefix` completes, case-insensitively, best first: the name
 * itself, then names starting with it, then names with a later part starting with it
 * (`@smi` finds `john_smith`); shorter names first within each, then by name. An empty
 * prefix (just `@`) matches everyone. At most `limit`.
 */
export function rankMentionMatches<T extends { username: string }>(members: Iterable<T>, prefix: string, options: MentionCompletionOptions<T> = {}): T[] {
  const limit = Math.max(0, Math.min(options.limit ?? DEFAULT_MENTION_MATCHES, MAX_MENTION_MATCHES));
  const wanted = prefix.toLowerCase();
  const ranked: Array<{ member: T; tier: number; name: string }> = [];
  for (const member of members) {
    if (options.exclude?.(member)) continue;
    const name = member.username.toLowerCase();
    const tier = name === wanted ? 0 : name.startsWith(wanted) ? 1 : laterPartStarts(name, wanted) ? 2 : -1;
    if (tier >= 0) ranked.push({ member, tier, name });
  }
  ranked.sort((a, b) => a.tier - b.tier || a.name.length - b.name.length || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return ranked.slice(0, limit).map((entry) => entry.member);
}

/** The `@prefix` typed at `caret` and the members it may complete to; undefined where no mention is being typed. */
export function mentionCompletion<T extends { username: string }>(text: string, caret: number, members: Iterable<T>, options: MentionCompletionOptions<T> = {}): MentionCompletion<T> | undefined {
  const query = mentionQueryAt(text, caret);
  return query && { query, matches: rankMentionMatches(members, query.prefix, options) };
}

/** `text` with the query replaced by `@username` and a space, and the caret just past that space. */
export function insertMention(text: string, query: MentionQuery, username: string): { text: string; caret: number } {
  const rest = text.slice(query.end);
  const inserted = `@${username}`;
  return { text: `${text.slice(0, query.start)}${inserted}${rest.startsWith(' ') ? rest : ` ${rest}`}`, caret: query.start + inserted.length + 1 };
}

function laterPartStarts(name: string, wanted: string): boolean {
  if (wanted === '') return true;
  for (let i = 1; i < name.length; i++) {
    if (PART_START.test(name[i - 1]!) && name.startsWith(wanted, i)) return true;
  }
  return false;
}
