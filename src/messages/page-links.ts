import type { MessagePage, PageRequest } from './history.js';

/**
 * RFC 8288 `Link` header: rel="next" is the next older page (API.md); a page read forward
 * with `after` also gets rel="newer" when more newer messages exist.
 */
export function pageLinks(publicUrl: string, conversationId: number, request: PageRequest, page: MessagePage): string | null {
  const base = `${publicUrl}/api/conversations/${conversationId}/messages/?limit=${request.limit}`;
  const first = page.messages[0];
  const last = page.messages.at(-1);
  const links: string[] = [];
  const readingForward = request.after !== undefined && request.before === undefined;
  const olderExist = readingForward ? first !== undefined : page.hasMore;
  if (first && olderExist) links.push(`<${base}&before=${first.id}>; rel="next"`);
  if (last && readingForward && page.hasMore) links.push(`<${base}&after=${last.id}>; rel="newer"`);
  return links.length > 0 ? links.join(', ') : null;
}
