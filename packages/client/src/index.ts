/**
 * The service's TypeScript client: REST calls and both sockets, typed from the service's own
 * schemas. Runs in browsers and in Node 24 (global `fetch` and `WebSocket`).
 *
 *   const client = new ChatClient({ baseUrl: 'https://chat.example' });
 *   await client.login('alice', 'secret-password');
 *   const chat = client.chat(conversation.id, { lastSeq: conversation.last_seq });
 *   chat.on('event', (event) => render(event));
 *   await chat.send('سلام!');
 */
import { type ChatReset, ChatSocket } from './chat-socket.js';
import { reloadConversation } from './chat-reload.js';
import { NotificationSocket } from './notification-socket.js';
import type { ReconnectOptions } from './reconnecting-socket.js';
import { ApiError } from './errors.js';
import { RestClient, type RestClientOptions } from './rest.js';
import { type LiveConversation, openLiveConversation } from './live-conversation.js';

export interface ChatClientOptions extends RestClientOptions, ReconnectOptions {
  /**
   * Called once each time the service refuses the session: a REST call answered 401 or a
   * socket closed with 4401 (logged out, logged out everywhere, password changed, account
   * deleted). An app returns to its login screen here.
   */
  onUnauthorized?: () => void;
}

/** Socket close code for a refused token or ticket. */
const UNAUTHORIZED = 4401;

export class ChatClient extends RestClient {
  constructor(private readonly options: ChatClientOptions) {
    super(options);
  }

  /**
   * Opens (and keeps open) the conversation's socket; it connects with single-use tickets.
   * Fallen too far behind to be replayed (4409), it reloads the conversation and its newest
   * page over REST (`reload`, by default `reloadConversation`), emits `reset` with them and
   * resumes from that `last_seq`.
   */
  chat(conversationId: number, options: { lastSeq?: number; reload?: () => Promise<ChatReset> } = {}): ChatSocket {
    const reload = options.reload ?? (() => reloadConversation(this, conversationId));
    const socket = new ChatSocket({ ...this.socketOptions(), conversationId, lastSeq: options.lastSeq, userId: this.user?.id, reload });
    socket.on('closed', ({ code }) => code === UNAUTHORIZED && this.unauthorized());
    return socket;
  }

  /**
   * A conversation kept current from its events: its socket and a state object with members,
   * roles, title, everyone's read marker and the caller's unread count.
   */
  openConversation(conversationId: number): Promise<LiveConversation> {
    return openLiveConversation(this, conversationId, (lastSeq, reload) => this.chat(conversationId, { lastSeq, reload }));
  }

  /** Opens (and keeps open) the caller's notification socket; it connects with single-use tickets. */
  notifications(): NotificationSocket {
    const socket = new NotificationSocket(this.socketOptions());
    socket.on('closed', ({ code }) => code === UNAUTHORIZED && this.unauthorized());
    return socket;
  }

  protected override unauthorized(): void {
    this.options.onUnauthorized?.();
  }

  private socketOptions() {
    return {
      baseUrl: this.baseUrl,
      ticket: async () => {
        try {
          return (await this.wsTicket()).ticket;
        } catch (error) {
          // Refused (401): connect with no credentials, so the service's own 4401 ends the socket.
          if (error instanceof ApiError && error.statusCode === 401) return '';
          throw error;
        }
      },
      backoff: this.options.backoff,
      WebSocket: this.options.WebSocket,
      stableMs: this.options.stableMs,
    };
  }
}

export { ChatSocket, type ChatReset, type ChatSocketState, SendError, type SocketSendOptions } from './chat-socket.js';
export { reloadConversation, RELOAD_PAGE_SIZE } from './chat-reload.js';
export { MessageStore } from './message-store.js';
export { applyReaction, REACTION_USERS_LISTED } from './reactions.js';
export { PresenceStore, PRESENCE_SETTLE_MS, type PresenceStoreOptions } from './presence.js';
export { findMentions, mentionedMembers, mentionSpans, mentionsUser, type MentionSpan } from './mentions.js';
export { DEFAULT_MENTION_MATCHES, insertMention, MAX_MENTION_MATCHES, mentionCompletion, mentionQueryAt, rankMentionMatches, type MentionCompletion, type MentionCompletionOptions, type MentionQuery } from './mention-completion.js';
export { isAbortError, type UploadOptions, type UploadProgress } from './upload.js';
export { ConversationState, type MemberState } from './conversation-state.js';
export { LiveConversation } from './live-conversation.js';
export { NotificationSocket } from './notification-socket.js';
export { RestClient, nextLink, type RestClientOptions, type ConversationPageQuery, type DirectConversation, type MemberPageQuery, type MessagePageQuery, type NotificationQuery, type Page, type SearchMessagesQuery, type SendOptions, type Session } from './rest.js';
export { ApiError, NetworkError } from './errors.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export { ReconnectingSocket, type ClosedInfo, type ReconnectOptions, type SocketState, type WebSocketConstructor } from './reconnecting-socket.js';
export { CloseCode, FATAL_CLOSE_CODES } from './generated/socket-codes.js';
// The service's wire types (views, events, requests, roles, error codes), generated from its contract.
export type * from './generated/contract.js';
