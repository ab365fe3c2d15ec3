/**
 * `@username` mentions in text, by the service's own rule (the syntax is the service's, copied
 * from its contract at build time): case-insensitive, never inside a word, so an e-mail address
 * or `mail@bob` mentions nobody, and sentence punctuation after a name (`@bob.`) is not part of it.
 */
import { mentionTokens } from './generated/mention-syntax.js';

/** One mention in a text: `text.slice(start, end)` is `@` and the name as written. */
export interface MentionSpan {
  start: number;
  end: number;
  /** The name it mentions, lowercased. */
  username: string;
}

/**
 * The mentions in `content`, in order. `isName` says which lowercased names count (the
 * conversation's members, as the service resolves them); without it every name that could be
 * a username counts. Of the readings of `@bob.` ("bob." and "bob") the longest that counts wins.
 */
export function mentionSpans(content: string, isName: (username: string) => boolean = () => true): MentionSpan[] {
  const spans: MentionSpan[] = [];
  for (const token of mentionTokens(content)) {
    const username = token.names.find(isName);
    if (username !== undefined) spans.push({ start: token.index, end: token.index + 1 + username.length, username });
  }
  return spans;
}

/** Where `content` mentions `username` (any case). */
export function findMentions(content: string, username: string): MentionSpan[] {
  const wanted = username.toLowerCase();
  return mentionSpans(content, (name) => name === wanted);
}

/** Whether `content` mentions `username` (any case). */
export const mentionsUser = (content: string, username: string): boolean => findMentions(content, username).length > 0;

/**
 * The registered usernames among `members` that `content` mentions, distinct, by lowercased
 * name: a message's `mentions` as the service resolves them (`@bob.` mentions both "bob." and
 * "bob" where both are members), for a message whose text changed (an edit event carries none).
 */
export function mentionedMembers(content: string, members: Iterable<{ username: string }>): string[] {
  const byName = new Map<string, string>();
  for (const member of members) byName.set(member.username.toLowerCase(), member.username);
  const found = new Set<string>();
  for (const token of mentionTokens(content)) for (const name of token.names) if (byName.has(name)) found.add(name);
  return [...found].sort().map((name) => byName.get(name)!);
}
