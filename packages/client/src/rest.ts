import type { AttachmentView, MessagePageQuery as MessagePageParams, MessageVersionView, MessageView, ConversationView, ReadStateView, AssignableRole, MemberView, NotificationQuery as NotificationParams, NotificationView, PresenceView, Session, UserView, WsTicketView } from './generated/contract.js';
import { ApiError, NetworkError } from './errors.js';
import { isAbortError, type UploadOptions, uploadTransport } from './upload.js';

export type { Session } from './generated/contract.js';

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

/** One page of a list and where the next one starts (the `Link: <...>; rel="next"` header), if any. */
export interface Page<T> {
  items: T[];
  /** The next page's query (`before=CURSOR`, `after=ID`, ...), opaque to the caller; undefined on the last page. */
  next: Query | undefined;
}

export interface ConversationPageQuery {
  limit?: number;
  /** The opaque cursor of a `Page.next`. */
  before?: string;
}

/** `GET /api/search/`: every word of `q` in the caller's conversations (or one), newest first. */
export interface SearchMessagesQuery {
  q: string;
  conversation_id?: number;
  limit?: number;
  /** The cursor of a `Page.next`. */
  before?: number | string;
}

/** A send's options: `clientId` makes it idempotent, `replyTo` is the id of the message it answers. */
export interface SendOptions {
  clientId?: string;
  replyTo?: number;
}

export interface MemberPageQuery {
  limit?: number;
  /** Only members with a larger user id. */
  after?: number;
}

/** The caller's direct conversation with one user, and whether this call created it (201) or found it (200). */
export interface DirectConversation {
  conversation: ConversationView;
  created: boolean;
}

interface Answer<T> {
  status: number;
  headers: Headers;
  body: T;
}

/** The REST half of API.md, typed. Every method throws `ApiError` for an error answer. */
export class RestClient {
  readonly baseUrl: string;
  token: string | undefined;
  /** Who the token belongs to: set by register, login, changePassword and `me()`. */
  user: UserView | undefined;
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
    this.user = undefined;
  }

  /** Ends every session of the user, this one included. */
  async logoutAll(): Promise<void> {
    await this.request('POST', '/api/auth/logout-all/');
    this.token = undefined;
    this.user = undefined;
  }

  /** Every earlier token is refused; the client carries on with the new one. A wrong current password → ApiError 403. */
  async changePassword(currentPassword: string, newPassword: string): Promise<Session> {
    const session = await this.request<Session>('POST', '/api/users/me/password/', {
      body: { current_password: currentPassword, new_password: newPassword },
    });
    this.token = session.token;
    this.user = session.user;
    return session;
  }

  /** Deletes the account for good (its messages are erased). A wrong password → ApiError 403. */
  async deleteAccount(password: string): Promise<void> {
    await this.request('DELETE', '/api/users/me/', { body: { password } });
    this.token = undefined;
    this.user = undefined;
  }

  /** A single-use socket ticket, valid for `expires_in` seconds. */
  wsTicket(): Promise<WsTicketView> {
    return this.request('POST', '/api/auth/ws-ticket/');
  }

  async me(): Promise<UserView> {
    const user = await this.request<UserView>('GET', '/api/users/me/');
    this.user = user;
    return user;
  }

  /** Up to 20 users whose username starts with `prefix`. */
  searchUsers(prefix: string): Promise<UserView[]> {
    return this.request('GET', '/api/users/', { query: { search: prefix } });
  }

  /** The first page of the caller's conversations, most recent activity first (`listConversationsPage` for the cursor). */
  async listConversations(limit?: number): Promise<ConversationView[]> {
    return (await this.listConversationsPage({ limit })).items;
  }

  /** One page of the inbox; pass `page.next` back in for the following one. */
  async listConversationsPage(query: ConversationPageQuery | Query = {}): Promise<Page<ConversationView>> {
    return this.page('/api/conversations/', { ...query });
  }

  /** Every conversation of the caller, page by page along the `Link` cursor. */
  conversations(query: { limit?: number } = {}): AsyncGenerator<ConversationView> {
    return this.all((next) => this.listConversationsPage(next ?? { limit: query.limit }));
  }

  /** A new group every time: `participants` are user ids or usernames; the caller is added (and is its owner). */
  createConversation(participants: Array<number | string>, options: { title?: string } = {}): Promise<ConversationView> {
    return this.request('POST', '/api/conversations/', { body: { participants, ...(options.title === undefined ? {} : { title: options.title }) } });
  }

  /** A named group (`title`: 1-100 characters); the caller is its owner. */
  createGroup(title: string, participants: Array<number | string>): Promise<ConversationView> {
    return this.createConversation(participants, { title });
  }

  /** The caller's one direct conversation with `user` (id or username): created now (201) or found (200). */
  async openDirect(user: number | string): Promise<DirectConversation> {
    const answer = await this.exchange<ConversationView>('POST', '/api/conversations/', { body: { participants: [user], direct: true } });
    return { conversation: answer.body, created: answer.status === 201 };
  }

  getConversation(id: number): Promise<ConversationView> {
    return this.request('GET', `/api/conversations/${id}/`);
  }

  /** Renames a group (owner and admins): its members see `conversation.updated`. */
  renameConversation(id: number, title: string): Promise<ConversationView> {
    return this.request('PATCH', `/api/conversations/${id}/`, { body: { title } });
  }

  /** One page of members, by user id. */
  listMembersPage(conversationId: number, query: MemberPageQuery | Query = {}): Promise<Page<MemberView>> {
    return this.page(`/api/conversations/${conversationId}/members/`, { ...query }, (items, asked) => {
      // Without a Link header a full page may still have a successor: continue after its last id.
      const limit = Number(asked.limit ?? DEFAULT_MEMBER_PAGE);
      const last = items.at(-1);
      return last && items.length >= limit ? { ...asked, after: last.id } : undefined;
    });
  }

  /** Every member, page by page. */
  members(conversationId: number, query: { limit?: number } = {}): AsyncGenerator<MemberView> {
    return this.all((next) => this.listMembersPage(conversationId, next ?? { limit: query.limit }));
  }

  /** Every member in one array. */
  async listMembers(conversationId: number): Promise<MemberView[]> {
    const members: MemberView[] = [];
    for await (const member of this.members(conversationId)) members.push(member);
    return members;
  }

  /** One page of the members' presence (`online`/`offline`, `last_seen_at`), by user id as `listMembersPage` pages. */
  listPresencePage(conversationId: number, query: MemberPageQuery | Query = {}): Promise<Page<PresenceView>> {
    return this.page(`/api/conversations/${conversationId}/presence/`, { ...query });
  }

  /** Every member's presence, page by page (a `PresenceStore` keeps it current from the socket). */
  async listPresence(conversationId: number, query: { limit?: number } = {}): Promise<PresenceView[]> {
    const rows: PresenceView[] = [];
    for await (const row of this.all((next) => this.listPresencePage(conversationId, next ?? { limit: query.limit }))) rows.push(row);
    return rows;
  }

  /** One user's presence: only of users who share a conversation with the caller (404 otherwise). */
  userPresence(userId: number): Promise<PresenceView> {
    return this.request('GET', `/api/users/${userId}/presence/`);
  }

  /** Adds members (owner and admins); members already in are ignored. Resolves with the conversation. */
  addMembers(conversationId: number, participants: Array<number | string>): Promise<ConversationView> {
    return this.request('POST', `/api/conversations/${conversationId}/members/`, { body: { participants } });
  }

  /** Removes a member (owner and admins); the caller's own id leaves. */
  removeMember(conversationId: number, userId: number): Promise<void> {
    return this.request('DELETE', `/api/conversations/${conversationId}/members/${userId}/`);
  }

  /** The caller leaves the conversation. */
  async leaveConversation(conversationId: number): Promise<void> {
    const me = this.user ?? (await this.me());
    await this.removeMember(conversationId, me.id);
  }

  /** Only the owner: makes a member `admin` or back `member`. */
  setRole(conversationId: number, userId: number, role: AssignableRole): Promise<MemberView> {
    return this.request('PATCH', `/api/conversations/${conversationId}/members/${userId}/`, { body: { role } });
  }

  /** Moves the caller's read marker forward to `seq` (clamped to the conversation's last seq). */
  markRead(conversationId: number, seq: number): Promise<ReadStateView> {
    return this.request('POST', `/api/conversations/${conversationId}/read/`, { body: { seq } });
  }

  /** The caller's unread count in each of their conversations (the whole inbox, page by page), by conversation id. */
  async unreadCounts(): Promise<Map<number, number>> {
    const counts = new Map<number, number>();
    for await (const conversation of this.conversations({ limit: 500 })) counts.set(conversation.id, conversation.unread_count);
    return counts;
  }

  /** A page in ascending id order: the newest by default, older ones with `before`. */
  listMessages(conversationId: number, query: MessagePageQuery = {}): Promise<MessageView[]> {
    return this.request('GET', `/api/conversations/${conversationId}/messages/`, { query: { ...query } });
  }

  /**
   * `clientId` (or `options.clientId`) makes the send idempotent: resending it returns the
   * first message. `options.replyTo`: the message of the same conversation it answers.
   */
  sendMessage(conversationId: number, content: string, options?: string | SendOptions): Promise<MessageView> {
    const { clientId, replyTo } = typeof options === 'string' ? { clientId: options, replyTo: undefined } : (options ?? {});
    return this.request('POST', `/api/conversations/${conversationId}/messages/`, { body: { content, client_id: clientId, reply_to: replyTo } });
  }

  /** Reacts with one emoji (idempotent); resolves with the message and its reactions as they are now. */
  react(conversationId: number, messageId: number, emoji: string): Promise<MessageView> {
    return this.request('PUT', `/api/conversations/${conversationId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}/`);
  }

  /** Takes the caller's reaction back (idempotent). */
  unreact(conversationId: number, messageId: number, emoji: string): Promise<void> {
    return this.request('DELETE', `/api/conversations/${conversationId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}/`);
  }

  /** Earlier versions of an edited message, oldest first (`[]` once it is deleted). */
  messageHistory(conversationId: number, messageId: number): Promise<MessageVersionView[]> {
    return this.request('GET', `/api/conversations/${conversationId}/messages/${messageId}/history/`);
  }

  /**
   * One page of search results, newest first; pass `page.next` back in for the following one.
   * A page may hold fewer than `limit` results, even none, and still have a next one.
   */
  searchMessagesPage(query: SearchMessagesQuery | Query): Promise<Page<MessageView>> {
    return this.page('/api/search/', { ...query });
  }

  /** Every result of a search, page by page along the `Link` cursor. */
  async *searchMessages(q: string, query: Omit<SearchMessagesQuery, 'q' | 'before'> = {}): AsyncGenerator<MessageView> {
    let next: Query | undefined = { ...query, q };
    while (next !== undefined) {
      const page: Page<MessageView> = await this.searchMessagesPage(next);
      yield* page.items;
      next = page.next;
    }
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

  /**
   * Only the message's sender may attach. The file streams through to storage. `onProgress`
   * reports the bytes sent; aborting `signal` cancels the upload (the call rejects with an
   * `AbortError` and no attachment is made). See upload.ts for what Node reports.
   */
  uploadAttachment(conversationId: number, messageId: number, file: Blob, filename: string, options: UploadOptions = {}): Promise<AttachmentView> {
    const form = new FormData();
    form.append('file', file, filename);
    return this.request('POST', `/api/conversations/${conversationId}/messages/${messageId}/attachments/`, { form, transport: uploadTransport(this.fetch, options) });
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
    this.user = session.user;
    return session;
  }

  /**
   * A list page and its successor's query: from the `Link: <...>; rel="next"` header (its
   * URL's query, so a PUBLIC_URL other than `baseUrl` does not matter), else from `fallback`.
   */
  private async page<T>(path: string, query: Query, fallback?: (items: T[], asked: Query) => Query | undefined): Promise<Page<T>> {
    const answer = await this.exchange<T[]>('GET', path, { query });
    const link = nextLink(answer.headers.get('link'));
    let next: Query | undefined;
    if (link !== undefined) {
      next = {};
      for (const [name, value] of new URL(link, this.baseUrl).searchParams) next[name] = value;
    } else if (answer.headers.get('link') === null) {
      next = fallback?.(answer.body, query);
    }
    return { items: answer.body, next };
  }

  private async *all<T>(fetchPage: (next: Query | undefined) => Promise<Page<T>>): AsyncGenerator<T> {
    let next: Query | undefined;
    for (;;) {
      const page = await fetchPage(next);
      yield* page.items;
      if (page.next === undefined || page.items.length === 0) return;
      next = page.next;
    }
  }

  private async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    return (await this.exchange<T>(method, path, options)).body;
  }

  private async exchange<T>(method: string, path: string, options: RequestOptions = {}): Promise<Answer<T>> {
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
      response = await (options.transport ?? this.fetch)(url, { method, headers, body });
    } catch (error) {
      if (isAbortError(error)) throw error;
      throw new NetworkError(`${method} ${path}: no answer from the service`, { cause: error });
    }
    if (response.status === 204) return { status: 204, headers: response.headers, body: undefined as T };
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
    return { status: response.status, headers: response.headers, body: json as T };
  }
}

interface RequestOptions {
  query?: Query;
  body?: unknown;
  form?: FormData;
  anonymous?: boolean;
  /** In place of `fetch` (uploads with progress). */
  transport?: (url: URL, init: { method: string; headers: Record<string, string>; body?: string | FormData }) => Promise<Response>;
}

/** API.md: the members list's default page size. */
const DEFAULT_MEMBER_PAGE = 100;

/** The target of the `rel="next"` link in a `Link` header (RFC 8288), if there is one. */
export function nextLink(header: string | null): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    const rel = match && /(?:^|;)\s*rel\s*=\s*(?:"([^"]*)"|([^\s;]+))/i.exec(match[2]!);
    if (match && rel && (rel[1] ?? rel[2] ?? '').toLowerCase().split(/\s+/).includes('next')) return match[1];
  }
  return undefined;
}
