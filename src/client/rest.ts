import type { AttachmentView, MessagePageQuery as MessagePageParams, MessageView } from '../contract/messages.js';
import type { ConversationView } from '../contract/conversations.js';
import type { NotificationQuery as NotificationParams, NotificationView } from '../contract/notifications.js';
import type { Session, UserView, WsTicketView } from '../contract/users.js';
import { ApiError, NetworkError } from './errors.js';

export type { Session } from '../contract/users.js';

/** A history page: the service's query, every field optional (its defaults apply). */
export type MessagePageQuery = Partial<MessagePageParams>;
export type NotificationQuery = Partial<NotificationParams>;

export interface RestClientOptions {
  /** The service's origin, e.g. `https://chat.example` (a browser page passes `location.origin`). */
  baseUrl: string;
  token?: string;
  /** Injected where there is no global `fetch`. */
  fetch?: typeof fetch;
}

type Query = Record<string, string | number | boolean | undefined>;

/** The REST half of API.md, typed. Every method throws `ApiError` for an error answer. */
export class RestClient {
  readonly baseUrl: string;
  token: string | undefined;
  private readonly fetch: typeof fetch;

  constructor(options: RestClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  async register(username: string, password: string): Promise<Session> {
    return this.startSession('register', username, password);
  }

  async login(username: string, password: string): Promise<Session> {
    return this.startSession('login', username, password);
  }

  /** Ends this session: the token is refused from now on (its sockets close with 4401). */
  async logout(): Promise<void> {
    await this.request('POST', '/api/auth/logout/');
    this.token = undefined;
  }

  /** Ends every session of the user, this one included. */
  async logoutAll(): Promise<void> {
    await this.request('POST', '/api/auth/logout-all/');
    this.token = undefined;
  }

  /** Every earlier token is refused; the client carries on with the new one. A wrong current password → ApiError 403. */
  async changePassword(currentPassword: string, newPassword: string): Promise<Session> {
    const session = await this.request<Session>('POST', '/api/users/me/password/', {
      body: { current_password: currentPassword, new_password: newPassword },
    });
    this.token = session.token;
    return session;
  }

  /** Deletes the account for good (its messages are erased). A wrong password → ApiError 403. */
  async deleteAccount(password: string): Promise<void> {
    await this.request('DELETE', '/api/users/me/', { body: { password } });
    this.token = undefined;
  }

  /** A single-use socket ticket, valid for `expires_in` seconds. */
  wsTicket(): Promise<WsTicketView> {
    return this.request('POST', '/api/auth/ws-ticket/');
  }

  me(): Promise<UserView> {
    return this.request('GET', '/api/users/me/');
  }

  /** Up to 20 users whose username starts with `prefix`. */
  searchUsers(prefix: string): Promise<UserView[]> {
    return this.request('GET', '/api/users/', { query: { search: prefix } });
  }

  /** Most recent activity first. */
  listConversations(limit?: number): Promise<ConversationView[]> {
    return this.request('GET', '/api/conversations/', { query: { limit } });
  }

  /** `participants`: user ids or usernames; the caller is always added. */
  createConversation(participants: Array<number | string>): Promise<ConversationView> {
    return this.request('POST', '/api/conversations/', { body: { participants } });
  }

  getConversation(id: number): Promise<ConversationView> {
    return this.request('GET', `/api/conversations/${id}/`);
  }

  /** A page in ascending id order: the newest by default, older ones with `before`. */
  listMessages(conversationId: number, query: MessagePageQuery = {}): Promise<MessageView[]> {
    return this.request('GET', `/api/conversations/${conversationId}/messages/`, { query: { ...query } });
  }

  /** `clientId` makes the send idempotent: resending it returns the first message. */
  sendMessage(conversationId: number, content: string, clientId?: string): Promise<MessageView> {
    return this.request('POST', `/api/conversations/${conversationId}/messages/`, { body: { content, client_id: clientId } });
  }

  editMessage(conversationId: number, messageId: number, content: string): Promise<MessageView> {
    return this.request('PATCH', `/api/conversations/${conversationId}/messages/${messageId}/`, { body: { content } });
  }

  deleteMessage(conversationId: number, messageId: number): Promise<void> {
    return this.request('DELETE', `/api/conversations/${conversationId}/messages/${messageId}/`);
  }

  listAttachments(conversationId: number, messageId: number): Promise<AttachmentView[]> {
    return this.request('GET', `/api/conversations/${conversationId}/messages/${messageId}/attachments/`);
  }

  /** Only the message's sender may attach. The file streams through to storage. */
  uploadAttachment(conversationId: number, messageId: number, file: Blob, filename: string): Promise<AttachmentView> {
    const form = new FormData();
    form.append('file', file, filename);
    return this.request('POST', `/api/conversations/${conversationId}/messages/${messageId}/attachments/`, { form });
  }

  /** Newest first. */
  listNotifications(query: NotificationQuery = {}): Promise<NotificationView[]> {
    return this.request('GET', '/api/notifications/', { query: { ...query } });
  }

  readNotification(id: number): Promise<NotificationView> {
    return this.request('POST', `/api/notifications/${id}/read/`);
  }

  async readAllNotifications(): Promise<number> {
    const { updated } = await this.request<{ updated: number }>('POST', '/api/notifications/read-all/');
    return updated;
  }

  /** Called when the service refuses the token (a 401 answer or a socket closed with 4401). */
  protected unauthorized(): void {}

  private async startSession(kind: 'register' | 'login', username: string, password: string): Promise<Session> {
    const session = await this.request<Session>('POST', `/api/auth/${kind}/`, { body: { username, password }, anonymous: true });
    this.token = session.token;
    return session;
  }

  private async request<T>(
    method: string,
    path: string,
    options: { query?: Query; body?: unknown; form?: FormData; anonymous?: boolean } = {},
  ): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token && !options.anonymous) headers.authorization = `Bearer ${this.token}`;
    let body: string | FormData | undefined = options.form;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let response: Response;
    try {
      response = await this.fetch(url, { method, headers, body });
    } catch (error) {
      throw new NetworkError(`${method} ${path}: no answer from the service`, { cause: error });
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      if (response.status === 401 && !options.anonymous) this.unauthorized();
      const problem = (json ?? {}) as { error?: string; message?: string };
      const retryAfter = response.headers.get('retry-after');
      throw new ApiError(
        response.status,
        problem.error ?? response.statusText,
        problem.message ?? `${method} ${path} failed with ${response.status}`,
        retryAfter === null ? undefined : Number(retryAfter),
      );
    }
    return json as T;
  }
}
