import type { ChatClient, ChatSocketState, ConversationState, ConversationView, NotificationSocket, NotificationView, UserView } from '@chat-service/client';
import { ConversationPane } from './conversation-pane.js';
import { DirectPresence } from './direct-presence.js';
import { clear, formatTime, h, showError } from './dom.js';
import { SearchPanel } from './search-panel.js';

/** Conversation list, notifications and the open conversation of a logged-in user. */
export class Workspace {
  readonly element: HTMLElement;
  private readonly conversationList = h('ul', { class: 'conversations', 'data-testid': 'conversations' });
  private readonly notificationList = h('ul', { class: 'notifications', 'data-testid': 'notifications' });
  private readonly status = h('span', { class: 'status', 'data-testid': 'connection' }, 'connecting…');
  private readonly main = h('section', { class: 'main' }, h('p', { class: 'placeholder' }, 'Pick a conversation or start one.'));
  private conversations: ConversationView[] = [];
  private readonly notifications = new Map<number, NotificationView>();
  private pane: ConversationPane | undefined;
  private notificationSocket: NotificationSocket | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Bumped by every local change of the list (a removal, a new conversation): a list read
   * that started before one may predate it (a removed group still in it), so it is dropped
   * and read again.
   */
  private listVersion = 0;
  private readonly onOnline = (): void => {
    this.notificationSocket?.reconnectNow();
    this.pane?.reconnectNow();
  };
  private readonly onVisible = (): void => {
    this.readOpenConversation();
    if (document.visibilityState === 'visible') this.directPresence.readIfStale(this.conversations);
  };
  private readonly directPresence: DirectPresence;
  private readonly search: SearchPanel;

  constructor(
    private readonly client: ChatClient,
    private readonly me: UserView,
    /** Ends the session on the service (`everywhere`: every session of the user), then shows the login. */
    private readonly logout: (everywhere: boolean) => void,
    private readonly expired: () => void,
  ) {
    this.directPresence = new DirectPresence(client, me.id, () => this.renderConversations());
    this.search = new SearchPanel(client, me, {
      conversationName: (id) => {
        const conversation = this.conversations.find((c) => c.id === id);
        return conversation ? this.conversationName(conversation) : `conversation ${id}`;
      },
      open: (id, messageId) => this.open(id, messageId),
      openedDirect: (conversation) => {
        this.upsertConversation(conversation);
        this.open(conversation.id);
      },
    });
    const participants = h('input', { placeholder: 'usernames, comma separated', dir: 'auto', 'data-testid': 'new-participants', required: true });
    const newConversation: HTMLFormElement = h(
      'form',
      { class: 'new-conversation' },
      participants,
      h('button', { type: 'submit', 'data-testid': 'start-conversation' }, 'Start'),
    );
    newConversation.addEventListener('submit', (event) => {
      event.preventDefault();
      const names = participants.value.split(',').map((name) => name.trim()).filter(Boolean);
      if (names.length === 0) return;
      void this.client.createConversation(names).then(
        (conversation) => {
          participants.value = '';
          this.upsertConversation(conversation);
          this.open(conversation.id);
        },
        (error: unknown) => showError(newConversation, error),
      );
    });
    const groupTitle = h('input', { 'aria-label': 'New group name', placeholder: 'group name', maxlength: 100, dir: 'auto', required: true, 'data-testid': 'group-title' });
    const groupMembers = h('input', { 'aria-label': 'Group members', placeholder: 'usernames, comma separated', dir: 'auto', required: true, 'data-testid': 'group-members' });
    const newGroup: HTMLFormElement = h(
      'form',
      { class: 'new-group', 'aria-label': 'New group' },
      groupTitle,
      h('div', { class: 'new-conversation' }, groupMembers, h('button', { type: 'submit', 'data-testid': 'create-group' }, 'Create group')),
    );
    newGroup.addEventListener('submit', (event) => {
      event.preventDefault();
      const names = groupMembers.value.split(',').map((name) => name.trim()).filter(Boolean);
      const title = groupTitle.value.trim();
      if (names.length === 0 || title === '') return;
      void this.client.createGroup(title, names).then(
        (conversation) => {
          groupTitle.value = '';
          groupMembers.value = '';
          this.upsertConversation(conversation);
          this.open(conversation.id);
        },
        (error: unknown) => showError(newGroup, error),
      );
    });
    this.element = h(
      'div',
      { class: 'workspace' },
      h(
        'header',
        {},
        h('strong', {}, 'Chat'),
        this.status,
        h('span', { class: 'me', dir: 'auto', 'data-testid': 'me' }, me.username),
        h('button', { type: 'button', class: 'secondary', 'data-testid': 'logout', onclick: () => this.logout(false) }, 'Log out'),
        h('button', { type: 'button', class: 'secondary', 'data-testid': 'logout-all', onclick: () => this.logout(true) }, 'Log out everywhere'),
      ),
      h(
        'aside',
        {},
        h('h2', {}, 'Search'),
        ...this.search.messageNodes,
        h('h2', {}, 'People'),
        ...this.search.peopleNodes,
        h('h2', {}, 'New group'),
        newGroup,
        h('h2', {}, 'New conversation'),
        newConversation,
        h('h2', {}, 'Conversations'),
        this.conversationList,
        h(
          'h2',
          {},
          'Notifications ',
          h('button', { type: 'button', class: 'link', 'data-testid': 'read-all', onclick: () => void this.readAll() }, 'mark all read'),
        ),
        this.notificationList,
      ),
      this.main,
    );
  }

  async start(): Promise<void> {
    window.addEventListener('online', this.onOnline);
    document.addEventListener('visibilitychange', this.onVisible);
    const socket = this.client.notifications();
    this.notificationSocket = socket;
    socket.on('notification', (notification) => this.onNotification(notification));
    socket.on('read', (event) => {
      for (const notification of this.notifications.values()) {
        if ('all' in event || notification.id === event.id) notification.is_read = true;
      }
      this.renderNotifications();
      // Read on another device: the unread counts changed there.
      this.refreshConversationsSoon();
    });
    // Notifications carry no seq: after a break, read the list again.
    socket.on('resync', () => void this.reload());
    socket.on('state', () => this.renderStatus());
    socket.on('closed', ({ code }) => {
      if (code === 4401) this.expired();
    });
    await this.reload();
  }

  destroy(): void {
    window.removeEventListener('online', this.onOnline);
    document.removeEventListener('visibilitychange', this.onVisible);
    clearTimeout(this.refreshTimer);
    this.search.destroy();
    this.notificationSocket?.close();
    this.pane?.destroy();
  }

  private async reload(): Promise<void> {
    try {
      const version = this.listVersion;
      const [conversations, notifications] = await Promise.all([this.client.listConversations(), this.client.listNotifications({ limit: 50 })]);
      if (version === this.listVersion) this.conversations = conversations;
      else this.refreshConversationsSoon();
      this.notifications.clear();
      for (const notification of notifications) this.notifications.set(notification.id, notification);
      this.renderNotifications();
      this.readOpenConversation();
      void this.directPresence.read(conversations);
    } catch (error) {
      showError(this.element, error);
    }
  }

  /** Several notifications in a burst refresh the conversation order once. */
  private refreshConversationsSoon(): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      const version = this.listVersion;
      this.client.listConversations().then(
        (conversations) => {
          if (version !== this.listVersion) return this.refreshConversationsSoon();
          this.conversations = conversations;
          this.renderConversations();
        },
        () => undefined,
      );
    }, 200);
  }

  private onNotification(notification: NotificationView): void {
    this.notifications.set(notification.id, notification);
    this.renderNotifications();
    this.readOpenConversation();
    this.refreshConversationsSoon();
  }

  private upsertConversation(conversation: ConversationView): void {
    this.listVersion += 1;
    this.conversations = [conversation, ...this.conversations.filter((c) => c.id !== conversation.id)];
    this.renderConversations();
  }

  private open(conversationId: number, focusMessageId?: number): void {
    this.pane?.destroy();
    this.directPresence.leave();
    const pane = new ConversationPane(this.client, this.me, conversationId, {
      onPresence: (id, entry) => this.directPresence.setLive(id, entry),
      onState: () => this.renderStatus(),
      onExpired: () => this.expired(),
      onChange: (state) => this.conversationChanged(state),
      onRemoved: (id) => {
        this.listVersion += 1;
        this.conversations = this.conversations.filter((conversation) => conversation.id !== id);
        this.renderConversations();
        this.renderStatus();
      },
    });
    this.pane = pane;
    clear(this.main);
    this.main.append(pane.element);
    void pane.start();
    if (focusMessageId !== undefined) void pane.focus(focusMessageId);
    this.readOpenConversation();
    this.renderConversations();
  }

  /** What concerns the conversation on screen is read as soon as it is seen. */
  private readOpenConversation(): void {
    const open = this.pane?.conversationId;
    if (open === undefined || document.visibilityState !== 'visible') return;
    for (const notification of this.notifications.values()) {
      if (!notification.is_read && notification.conversation_id === open) void this.markRead(notification);
    }
  }

  private async markRead(notification: NotificationView): Promise<void> {
    try {
      this.notifications.set(notification.id, await this.client.readNotification(notification.id));
      this.renderNotifications();
    } catch (error) {
      showError(this.element, error);
    }
  }

  private async readAll(): Promise<void> {
    try {
      await this.client.readAllNotifications();
      for (const notification of this.notifications.values()) notification.is_read = true;
      this.renderNotifications();
    } catch (error) {
      showError(this.element, error);
    }
  }

  /** The open conversation's live state: its unread count and title are newer than the list's. */
  private conversationChanged(state: ConversationState): void {
    const conversation = this.conversations.find((c) => c.id === state.id);
    if (!conversation) return;
    if (conversation.unread_count === state.unreadCount && conversation.title === state.title && conversation.member_count === state.members.size) return;
    conversation.unread_count = state.unreadCount;
    conversation.title = state.title;
    conversation.member_count = state.members.size;
    this.renderConversations();
  }

  /** The service's count; before it sent one, the unread notifications' count. */
  private unreadCount(conversation: ConversationView): number {
    const live = conversation.id === this.pane?.conversationId ? this.pane.unreadCount : undefined;
    if (live !== undefined) return live;
    if (typeof conversation.unread_count === 'number') return conversation.unread_count;
    return this.notificationUnread(conversation.id);
  }

  private notificationUnread(conversationId: number): number {
    let count = 0;
    for (const notification of this.notifications.values()) {
      if (notification.is_read || notification.conversation_id !== conversationId) continue;
      count += notification.kind === 'messages.new' ? notification.count : 1;
    }
    return count;
  }

  /** Its title; untitled, the other members' names (only the caller: their own). */
  private conversationName(conversation: ConversationView): string {
    return conversation.title ?? (conversation.participants.filter((p) => p !== this.me.username).join(', ') || this.me.username);
  }

  private renderConversations(): void {
    clear(this.conversationList);
    for (const conversation of this.conversations) {
      const unread = this.unreadCount(conversation);
      const name = this.conversationName(conversation);
      const mentioned = [...this.notifications.values()].some((n) => n.kind === 'mention' && !n.is_read && n.conversation_id === conversation.id);
      this.conversationList.append(
        h(
          'li',
          {
            'data-testid': 'conversation',
            'data-id': conversation.id,
            class: conversation.id === this.pane?.conversationId ? 'active' : undefined,
            'aria-current': conversation.id === this.pane?.conversationId ? 'true' : undefined,
            // Reachable and operable from the keyboard, named with its unread count.
            role: 'button',
            tabindex: 0,
            'aria-label': unread > 0 ? `${name}, ${unread} unread` : name,
            onclick: () => this.open(conversation.id),
            onkeydown: (event: Event) => {
              if (event instanceof KeyboardEvent && (event.key === 'Enter' || event.key === ' ')) {
                event.preventDefault();
                this.open(conversation.id);
              }
            },
          },
          conversation.kind === 'direct' && this.directPresence.dot(conversation.id),
          h('span', { class: 'names', dir: 'auto' }, name),
          mentioned && h('span', { class: 'badge mention-badge', 'data-testid': 'mentioned', 'aria-label': 'you were mentioned', title: 'you were mentioned' }, '@'),
          unread > 0 && h('span', { class: 'badge', 'data-testid': 'unread', 'aria-label': `${unread} unread` }, String(unread)),
        ),
      );
    }
  }

  private renderNotifications(): void {
    clear(this.notificationList);
    const newestFirst = [...this.notifications.values()].sort((a, b) => b.id - a.id);
    for (const notification of newestFirst) {
      const conversationId = notification.conversation_id;
      this.notificationList.append(
        h(
          'li',
          {
            'data-testid': 'notification',
            'data-id': notification.id,
            'data-read': String(notification.is_read),
            'data-kind': notification.kind,
            class: `${notification.is_read ? 'read' : 'unread'}${notification.kind === 'mention' ? ' mentioned' : ''}`,
          },
          h(
            'span',
            { class: 'text', dir: 'auto', onclick: () => conversationId !== null && this.open(conversationId) },
            notification.kind === 'mention' && h('span', { class: 'kind', 'aria-label': 'mention: ' }, '@'),
            notification.message,
          ),
          h('time', { datetime: notification.timestamp }, formatTime(notification.timestamp)),
          !notification.is_read &&
            h('button', { type: 'button', class: 'link', 'data-testid': 'mark-read', onclick: () => void this.markRead(notification) }, 'mark read'),
        ),
      );
    }
    this.renderConversations();
  }

  private renderStatus(): void {
    // A conversation the caller was removed from has no socket to wait for.
    const paneState = this.pane?.state;
    const states: ChatSocketState[] = [this.notificationSocket?.state ?? 'connecting', ...(paneState && paneState !== 'removed' && this.pane?.element.dataset.removed !== 'true' ? [paneState] : [])];
    const online = states.every((state) => state === 'open');
    this.status.textContent = online ? 'online' : states.includes('closed') ? 'offline' : 'reconnecting…';
    this.status.dataset.state = online ? 'online' : 'reconnecting';
  }
}
