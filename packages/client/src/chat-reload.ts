import type { ChatReset } from './chat-socket.js';
import type { RestClient } from './rest.js';

/** The newest page a reload after a 4409 reads (the history route's default size). */
export const RELOAD_PAGE_SIZE = 50;

/**
 * What a chat socket that fell too far behind (4409) resumes from: the conversation first
 * (its `last_seq`), the newest page second, so whatever happens between the two reads is
 * replayed by the socket (and merged by id) rather than missed.
 */
export async function reloadConversation(client: RestClient, conversationId: number, limit = RELOAD_PAGE_SIZE): Promise<ChatReset> {
  const conversation = await client.getConversation(conversationId);
  const messages = await client.listMessages(conversationId, { limit });
  return { conversation, messages, lastSeq: conversation.last_seq };
}
