/**
 * `@username` mentions (API.md version 2, "Large conversations and mentions"): the names a
 * text may mention, lowercased, for the statement that stores the message to resolve against
 * its members. Which of them are members is the database's business; this only reads text,
 * by the syntax the client package shares (contract/mention-syntax.ts).
 */
import { mentionTokens } from '../contract/mention-syntax.js';

/**
 * Distinct names kept per message at most. A message of MAX_MESSAGE_LENGTH characters holds
 * fewer mentions than this unless it is longer than 20,000 characters; the cap keeps a
 * pathological one from sending a huge parameter.
 */
export const MAX_MENTION_CANDIDATES = 5_000;

/**
 * The lowercased names `content` may mention, distinct, in order of first appearance; null
 * when there are none (most messages: the statement then skips the lookup). A name followed by
 * sentence punctuation (`@alice.`, `@bob-`) is tried with and without it, since usernames may
 * hold `.` and `-` too.
 */
export function mentionCandidates(content: string): string[] | null {
  const names = new Set<string>();
  for (const token of mentionTokens(content)) {
    for (const name of token.names) names.add(name);
    if (names.size >= MAX_MENTION_CANDIDATES) break;
  }
  return names.size === 0 ? null : [...names];
}

/** The candidates as one text parameter of the batch statement (names hold no space). */
export const encodeCandidates = (names: string[] | null): string | null => (names === null ? null : names.join(' '));
