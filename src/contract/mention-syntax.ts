/**
 * What text is an `@username` mention (API.md version 2, "Large conversations and mentions"),
 * in one place for the service, which resolves the names against the conversation's members,
 * and for the client package, which finds them in text to highlight and complete:
 * packages/client/scripts/contract-types.mjs copies this file as it is, so it imports nothing.
 */

/**
 * An `@` not inside a word (not after a letter, digit or username character, so
 * `bob@example.com` mentions nobody), then a username's characters (API.md: 3-32 letters,
 * digits, `_ . -`), not followed by a letter or digit of any script (`@aliceجان` is no mention).
 */
const MENTION = /(?<![\p{L}\p{N}_.@-])@([A-Za-z0-9_.-]{3,64})(?![\p{L}\p{N}])/gu;
const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;
/** Sentence punctuation a name may be followed by (`@alice.`, `@bob-`), though usernames may hold it too. */
const TRAILING = /[.-]+$/;

/** One `@name` in a text. */
export interface MentionToken {
  /** Where its `@` stands (a UTF-16 index, as `String.prototype.slice` counts). */
  index: number;
  /**
   * The usernames it may mention, lowercased, longest first: the whole name, and the name
   * without trailing `.`/`-` where that differs. The mention spans `@` plus the one that
   * is a member (names are ASCII, so lowercasing keeps their length).
   */
  names: string[];
}

/** The `@name` tokens of `content`, in order. */
export function* mentionTokens(content: string): Generator<MentionToken> {
  if (!content.includes('@')) return;
  for (const match of content.matchAll(MENTION)) {
    const token = match[1]!.toLowerCase();
    const names: string[] = [];
    if (USERNAME.test(token)) names.push(token);
    const trimmed = token.replace(TRAILING, '');
    if (trimmed !== token && USERNAME.test(trimmed)) names.push(trimmed);
    if (names.length > 0) yield { index: match.index, names };
  }
}
