import type { ReactionAddedEvent, ReactionRemovedEvent, ReactionView } from './generated/contract.js';

/** API.md: a reaction lists at most this many usernames (the first to react). */
export const REACTION_USERS_LISTED = 10;

type ReactionEvent = ReactionAddedEvent | ReactionRemovedEvent;

/**
 * A message's reactions after one reaction event. Idempotent where the message says enough:
 * an event about a user already listed (added) or not listed while every reactor is listed
 * (removed) changes nothing, so an event that a history page read after it already counted
 * is not counted twice. Past ten reactors with one emoji the unlisted ones cannot be told
 * apart, and such an event is counted.
 */
export function applyReaction(reactions: readonly ReactionView[], event: ReactionEvent): ReactionView[] {
  const index = reactions.findIndex((reaction) => reaction.emoji === event.emoji);
  const current = index < 0 ? undefined : reactions[index]!;
  if (event.type === 'reaction.added') {
    if (!current) return [...reactions, { emoji: event.emoji, count: 1, users: [event.user] }];
    if (current.users.includes(event.user)) return [...reactions];
    const users = current.users.length < REACTION_USERS_LISTED ? [...current.users, event.user] : current.users;
    return reactions.map((reaction, i) => (i === index ? { ...reaction, count: reaction.count + 1, users } : reaction));
  }
  if (!current) return [...reactions];
  const listed = current.users.includes(event.user);
  if (!listed && current.count <= current.users.length) return [...reactions];
  if (current.count <= 1) return reactions.filter((_, i) => i !== index);
  const users = current.users.filter((user) => user !== event.user);
  return reactions.map((reaction, i) => (i === index ? { ...reaction, count: reaction.count - 1, users } : reaction));
}
