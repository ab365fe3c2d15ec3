import { mentionSpans } from '@chat-service/client';
import { h } from './dom.js';

/** Who reads: their own mentions stand out; those of other members are marked lightly. */
export interface MentionReader {
  /** Whether a lowercased username is the reader's. */
  isMe(username: string): boolean;
  /** Whether a lowercased username is a member's (only members are mentioned). */
  isMember(username: string): boolean;
}

/** A message's text with its mentions as elements (the rest stays text), and whether one is the reader's. */
export function mentionText(content: string, reader: MentionReader): { nodes: Array<Node | string>; mentionsMe: boolean } {
  const nodes: Array<Node | string> = [];
  let mentionsMe = false;
  let from = 0;
  for (const span of mentionSpans(content, (name) => reader.isMe(name) || reader.isMember(name))) {
    const mine = reader.isMe(span.username);
    mentionsMe ||= mine;
    if (span.start > from) nodes.push(content.slice(from, span.start));
    nodes.push(h('span', { class: mine ? 'mention mention-me' : 'mention', 'data-testid': mine ? 'mention-me' : 'mention', 'data-username': span.username, dir: 'ltr' }, content.slice(span.start, span.end)));
    from = span.end;
  }
  if (from < content.length) nodes.push(content.slice(from));
  return { nodes, mentionsMe };
}
