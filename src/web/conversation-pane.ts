import { type ChatClient, type ChatSocket, type ConversationEvent, type MessageView, SendError, type SocketState, type UserView } from '../client/index.js';
import { composer } from './composer.js';
import { h, showError } from './dom.js';
import { type MessageActions, renderMessage } from './message-item.js';

const PAGE_SIZE = 30;
/** Scrolling this close to the top loads the previous page. */
const LOAD_OLDER_PX = 80;
/** A typing indicator nobody cleared (the typist's tab closed) fades after this. */
const TYPING_TTL_MS = 6_000;

export interface PaneCallbacks {
  onState(state: SocketState): void;
  onExpired(): void;
}

/**
 * One open conversation: history (older pages on scroll-up), live events through a
 * ChatSocket resumed from the conversation's `last_seq`, typing, edit, delete, uploads.
 */
export class ConversationPane {
  readonly element: HTMLElement;
  private readonly list = h('ol', { class: 'messages', 'data-testid': 'messages' });
  private readonly typingLine = h('div', { class: 'typing', 'data-testid': 'typing', 'aria-live': 'polite' });
  private readonly title = h('h2', { dir: 'auto', 'data-testid': 'conversation-title' });
  private readonly items = new Map<number, { message: MessageView; element: HTMLElement }>();
  private readonly pending = new Map<string, HTMLElement>();
  private readonly typists = new Map<string, ReturnType<typeof setTimeout>>();
  private socket: ChatSocket | undefined;
  private hasOlder = true;
  private loadingOlder = false;
  private destroyed = false;
  private readonly actions: MessageActions = {
    edit: (message, content) => this.socket?.edit(message.id, content),
    delete: (message) => this.socket?.delete(message.id),
  };

  constructor(
    private readonly client: ChatClient,
    private readonly me: UserView,
    readonly conversationId: number,
    private readonly callbacks: PaneCallbacks,
  ) {
    this.list.addEventListener('scroll', () => {
      if (this.list.scrollTop < LOAD_OLDER_PX) void this.loadOlder();
    });
    this.element = h(
      'div',
      { class: 'conversation', 'data-testid': 'conversation-pane', 'data-id': conversationId },
      this.title,
      this.list,
      this.typingLine,
      composer({ send: (text, files) => this.send(text, files), typing: (isTyping) => this.socket?.typing(isTyping) }),
    );
  }

  get state(): SocketState {
    return this.socket?.state ?? 'connecting';
  }

  async start(): Promise<void> {
    try {
      // last_seq first, history second: the socket replays whatever happened in between.
      const conversation = await this.client.getConversation(this.conversationId);
      this.title.textContent = conversation.participants.join(', ');
      const page = await this.client.listMessages(this.conversationId, { limit: PAGE_SIZE });
      if (this.destroyed) return;
      this.hasOlder = page.length === PAGE_SIZE;
      for (const message of page) this.upsert(message);
      this.scrollToBottom();
      const socket = this.client.chat(this.conversationId, { lastSeq: conversation.last_seq });
      this.socket = socket;
      socket.on('event', (event) => this.apply(event));
      socket.on('typing', (event) => this.showTyping(event.user, event.is_typing));
      socket.on('error', (event) => showError(this.element, `${event.code}: ${event.message}`));
      socket.on('state', (state) => {
        this.element.dataset.state = state;
        this.callbacks.onState(state);
      });
      socket.on('closed', ({ code }) => {
        if (code === 4401) this.callbacks.onExpired();
      });
    } catch (error) {
      showError(this.element, error);
    }
  }

  reconnectNow(): void {
    this.socket?.reconnectNow();
  }

  destroy(): void {
    this.destroyed = true;
    this.socket?.close();
    for (const timer of this.typists.values()) clearTimeout(timer);
  }

  private async send(text: string, files: File[]): Promise<void> {
    const socket = this.socket;
    if (!socket) throw new Error('not connected yet');
    const content = text || files.map((file) => file.name).join(', ');
    const clientId = crypto.randomUUID();
    // Shown at once, replaced by the stored message when its chat.message arrives.
    const placeholder = h('li', { class: 'message mine pending', 'data-testid': 'pending' }, h('div', { class: 'content', dir: 'auto' }, content));
    this.pending.set(clientId, placeholder);
    this.list.append(placeholder);
    this.scrollToBottom();
    try {
      const message = await socket.send(content, clientId);
      for (const file of files) await this.client.uploadAttachment(this.conversationId, message.id, file, file.name);
    } catch (error) {
      placeholder.remove();
      showError(this.element, error instanceof SendError ? `${error.event.code}: ${error.message}` : error);
      throw error;
    } finally {
      this.pending.delete(clientId);
    }
  }

  private apply(event: ConversationEvent): void {
    switch (event.type) {
      case 'chat.message':
        this.upsert(event.message);
        this.showTyping(event.message.sender, false);
        return;
      case 'message.edited':
        this.update(event.message.id, (message) => ({ ...message, content: event.message.content, is_edited: true, edited_at: event.message.edited_at }));
        return;
      case 'message.deleted':
        this.update(event.message_id, (message) => ({ ...message, content: '', is_deleted: true, attachments: [] }));
        return;
      case 'attachment.added':
        this.update(event.message_id, (message) =>
          message.attachments.some((attachment) => attachment.id === event.attachment.id)
            ? message
            : { ...message, attachments: [...message.attachments, event.attachment] },
        );
        return;
    }
  }

  /** Adds a message in id order, or re-renders it if already shown (history and replay overlap). */
  private upsert(message: MessageView): void {
    const existing = this.items.get(message.id);
    if (existing) {
      existing.message = message;
      renderMessage(existing.element, message, message.sender_id === this.me.id, this.actions);
      return;
    }
    const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 60;
    const element = h('li');
    renderMessage(element, message, message.sender_id === this.me.id, this.actions);
    this.items.set(message.id, { message, element });
    const placeholder = message.client_id === null ? undefined : this.pending.get(message.client_id);
    placeholder?.remove();
    const next = [...this.items.keys()].filter((id) => id > message.id).sort((a, b) => a - b)[0];
    const before = next === undefined ? this.list.querySelector('.pending') : this.items.get(next)!.element;
    this.list.insertBefore(element, before);
    if (nearBottom || message.sender_id === this.me.id) this.scrollToBottom();
  }

  private update(id: number, change: (message: MessageView) => MessageView): void {
    const item = this.items.get(id);
    if (!item) return;
    item.message = change(item.message);
    renderMessage(item.element, item.message, item.message.sender_id === this.me.id, this.actions);
  }

  private async loadOlder(): Promise<void> {
    if (!this.hasOlder || this.loadingOlder || this.items.size === 0) return;
    this.loadingOlder = true;
    try {
      const oldest = Math.min(...this.items.keys());
      const page = await this.client.listMessages(this.conversationId, { limit: PAGE_SIZE, before: oldest });
      this.hasOlder = page.length === PAGE_SIZE;
      // Keep what the user is looking at in place while rows are added above it.
      const fromBottom = this.list.scrollHeight - this.list.scrollTop;
      for (const message of page) this.upsert(message);
      this.list.scrollTop = this.list.scrollHeight - fromBottom;
    } catch (error) {
      showError(this.element, error);
    } finally {
      this.loadingOlder = false;
    }
  }

  private showTyping(user: string, isTyping: boolean): void {
    clearTimeout(this.typists.get(user));
    this.typists.delete(user);
    if (isTyping && user !== this.me.username) {
      this.typists.set(
        user,
        setTimeout(() => this.showTyping(user, false), TYPING_TTL_MS),
      );
    }
    const names = [...this.typists.keys()];
    this.typingLine.textContent = names.length === 0 ? '' : `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…`;
  }

  private scrollToBottom(): void {
    this.list.scrollTop = this.list.scrollHeight;
  }
}
