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
import { ChatSocket } from './chat-socket.js';
import { NotificationSocket } from './notification-socket.js';
import type { ReconnectOptions } from './reconnecting-socket.js';
import { RestClient, type RestClientOptions } from './rest.js';

export interface ChatClientOptions extends RestClientOptions, ReconnectOptions {}

export class ChatClient extends RestClient {
  constructor(private readonly options: ChatClientOptions) {
    super(options);
  }

  /** Opens (and keeps open) the conversation's socket. */
  chat(conversationId: number, options: { lastSeq?: number } = {}): ChatSocket {
    return new ChatSocket({ ...this.socketOptions(), conversationId, lastSeq: options.lastSeq });
  }

  /** Opens (and keeps open) the caller's notification socket. */
  notifications(): NotificationSocket {
    return new NotificationSocket(this.socketOptions());
  }

  private socketOptions() {
    return {
      baseUrl: this.baseUrl,
      token: () => this.token,
      backoff: this.options.backoff,
      WebSocket: this.options.WebSocket,
      stableMs: this.options.stableMs,
    };
  }
}

export { ChatSocket, SendError } from './chat-socket.js';
export { NotificationSocket } from './notification-socket.js';
export { RestClient, type MessagePageQuery, type NotificationQuery, type Session } from './rest.js';
export { ApiError, NetworkError } from './errors.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export { ReconnectingSocket, type SocketState } from './reconnecting-socket.js';
export { CloseCode, FATAL_CLOSE_CODES } from '../contract/socket-codes.js';
export type * from '../contract/events.js';
export type * from '../contract/messages.js';
export type * from '../contract/conversations.js';
export type * from '../contract/notifications.js';
export type * from '../contract/users.js';
export type { ErrorCode } from '../contract/socket-codes.js';
