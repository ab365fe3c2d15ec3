import {
  ApiError,
  type ChatClient,
  type ChatSocketState,
  type ConversationEvent,
  type ConversationState,
  type LiveConversation,
  type PresenceView,
  SendError,
  type UserView,
} from '@chat-service/client';
import { type ComposerForm, composer } from './composer.js';
import { h, showError } from './dom.js';
import { type MemberActions, MembersPanel } from './members-panel.js';
import type { MessageActions } from './message-item.js';
import { MessageList, type OlderPage } from './message-list.js';
import { PanePresence } from './pane-presence.js';
import { uploadWithProgress } from './upload-row.js';

const PAGE_SIZE = 30;
/** A typing indicator nobody cleared (the typist's tab closed) fades after this. */
const TYPING_TTL_MS = 6_000;
/** "Seen by" names everyone, so it is shown only in conversations this small. */
const SEEN_BY_MAX_MEMBERS = 20;
/** An untitled group is named after this many of its members. */
const NAMES_IN_TITLE = 4;

export interface PaneCallbacks {
  onState(state: ChatSocketState): void;
  onExpired(): void;
  /** Membership, title or the caller's unread count changed. */
  onChange(state: ConversationState): void;
  /** The caller is no longer a member (removed, or left). */
  onRemoved(conversationId: number): void;
  /** The other person's presence in a direct conversation changed. */
  onPresence?(conversationId: number, entry: PresenceView | undefined): void;
}

/**
 * One open conversation: history (older pages on scroll-up), live events through a
 * ChatSocket resumed from the conversation's `last_seq`, typing, edit, delete, uploads; the
 * members panel, the read marker moved as messages are seen, and "seen by" under the last message.
 */
export class ConversationPane {
  readonly element: HTMLElement;
  private readonly messages: MessageList;
  private readonly typingLine = h('div', { class: 'typing', 'data-testid': 'typing', 'aria-live': 'polite' });
  private readonly seenLine = h('div', { class: 'seen-by', 'data-testid': 'seen-by', 'aria-live': 'polite' });
  private readonly title = h('h2', { dir: 'auto', 'data-testid': 'conversation-title' });
  private readonly membersToggle = h('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false', 'aria-controls': '', 'data-testid': 'members-toggle' }, 'Members');
  private readonly composerForm: ComposerForm;
  private readonly uploads = h('div', { class: 'uploads', 'data-testid': 'uploads', 'aria-live': 'polite' });
  private readonly typists = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly panel: MembersPanel;
  private readonly presence: PanePresence;
  /** The members' lowercased names, for marking mentions; dropped when membership changes. */
  private memberNames: Set<string> | undefined;
  private live: LiveConversation | undefined;
  /** Settles once the conversation is loaded and its socket made: a send typed before that waits for it. */
  private readonly loaded: Promise<LiveConversation | undefined>;
  private settleLoaded: (live: LiveConversation | undefined) => void = () => undefined;
  /** Settles once `start` is done: the first page is on screen (or failed). */
  private readonly historyLoaded: Promise<void>;
  private settleHistory: () => void = () => undefined;
  private destroyed = false;
  private readonly actions: MessageActions = {
    edit: (message, content) => this.live?.socket.edit(message.id, content),
    delete: (message) => this.live?.socket.delete(message.id),
    reply: (message) => this.composerForm.setReply(message),
    react: (message, emoji, on) => (on ? this.live?.socket.react(message.id, emoji) : this.live?.socket.unreact(message.id, emoji)),
    reactedByMe: (message, emoji) => this.live?.messages.reactedByMe(message.id, emoji) ?? false,
    history: (message) => this.client.messageHistory(this.conversationId, message.id),
    jumpTo: (messageId) => void this.jumpTo(messageId),
    mentions: {
      isMe: (username) => username === this.me.username.toLowerCase(),
      isMember: (username) => this.isMemberName(username),
    },
  };

  constructor(
    private readonly client: ChatClient,
    private readonly me: UserView,
    readonly conversationId: number,
    private readonly callbacks: PaneCallbacks,
  ) {
    this.loaded = new Promise((resolve) => (this.settleLoaded = resolve));
    this.historyLoaded = new Promise((resolve) => (this.settleHistory = resolve));
    this.messages = new MessageList(me.id, this.actions, (before) => this.readOlder(before), (seq) => this.read(seq));
    const memberActions: MemberActions = {
      add: async (names) => void (await this.client.addMembers(conversationId, names)),
      remove: (member) => this.client.removeMember(conversationId, member.id),
      setRole: async (member, role) => void (await this.client.setRole(conversationId, member.id, role)),
      rename: async (title) => void (await this.client.renameConversation(conversationId, title)),
      leave: () => this.client.leaveConversation(conversationId),
    };
    this.panel = new MembersPanel(me.id, memberActions, (error) => showError(this.element, error));
    this.presence = new PanePresence(me.id, this.panel, (entry) => this.callbacks.onPresence?.(conversationId, entry));
    const panelId = `members-${conversationId}`;
    this.panel.element.id = panelId;
    this.panel.element.hidden = true;
    this.membersToggle.setAttribute('aria-controls', panelId);
    this.membersToggle.addEventListener('click', () => {
      const open = this.panel.element.hidden;
      this.panel.element.hidden = !open;
      this.membersToggle.setAttribute('aria-expanded', String(open));
    });
    this.composerForm = composer({
      send: (text, files, replyTo) => this.send(text, files, replyTo),
      typing: (isTyping) => this.live?.socket.typing(isTyping),
      mentions: { myId: me.id, members: () => this.live?.state.members.values() ?? [], presence: (userId) => this.presence.get(userId) },
    });
    this.element = h(
      'div',
      { class: 'conversation', 'data-testid': 'conversation-pane', 'data-id': conversationId },
      h('div', { class: 'conversation-header' }, h('div', { class: 'heading' }, this.title, this.presence.header), this.membersToggle),
      this.panel.element,
      this.messages.element,
      this.seenLine,
      this.typingLine,
      this.uploads,
      this.composerForm,
    );
  }

  /** The caller's unread count as the live state has it (undefined until loaded). */
  get unreadCount(): number | undefined {
    return this.live?.state.unreadCount;
  }

  get state(): ChatSocketState {
    return this.live?.socket.state ?? 'connecting';
  }

  async start(): Promise<void> {
    try {
      // The conversation (its last_seq) first, history second: the socket replays whatever happened in between.
      const live = await this.client.openConversation(this.conversationId);
      if (this.destroyed) return live.close();
      this.live = live;
      this.settleLoaded(live);
      this.presence.start(this.client, live);
      this.messages.tracker.floor = live.state.lastReadSeq;
      live.on('event', (event) => this.apply(event));
      live.on('messages', (changed) => {
        for (const message of changed) this.messages.upsert(message);
      });
      live.on('reset', (reset) => {
        this.memberNames = undefined;
        this.messages.showNewest(reset.messages, true);
      });
      live.on('change', (state) => this.changed(state));
      live.on('removed', () => this.showRemoved());
      live.socket.on('typing', (event) => this.showTyping(event.user, event.is_typing));
      live.socket.on('error', (event) => showError(this.element, `${event.code}: ${event.message}`));
      live.socket.on('state', (state) => {
        this.element.dataset.state = state;
        this.callbacks.onState(state);
      });
      live.socket.on('closed', ({ code }) => {
        if (code === 4401) this.callbacks.onExpired();
        else if (code === 4403 && !live.state.removed) this.showRemoved();
      });
      // Listening before the history read: events that arrive meanwhile are merged by id.
      const page = await this.client.listMessages(this.conversationId, { limit: PAGE_SIZE });
      if (this.destroyed) return;
      live.state.observe(page);
      this.messages.showNewest(live.messages.add(page), page.length === PAGE_SIZE);
      this.changed(live.state);
    } catch (error) {
      this.settleLoaded(this.live);
      if (error instanceof ApiError && error.statusCode === 404) this.showRemoved();
      else showError(this.element, error);
    } finally {
      this.settleHistory();
    }
  }

  /** Opens at `messageId` (a search result): scrolled to and highlighted once loaded. */
  async focus(messageId: number): Promise<void> {
    await this.loaded;
    await this.historyLoaded;
    await this.jumpTo(messageId);
  }

  reconnectNow(): void {
    this.live?.socket.reconnectNow();
  }

  destroy(): void {
    this.destroyed = true;
    this.settleLoaded(undefined);
    this.live?.close();
    this.presence.destroy();
    this.messages.destroy();
    for (const timer of this.typists.values()) clearTimeout(timer);
  }

  /** The tracker saw `seq`: reading the newest message reads everything up to the last event. */
  private read(seq: number): void {
    const live = this.live;
    if (!live || live.state.removed) return;
    live.read(seq >= this.messages.newestSeq ? live.state.lastSeq : seq);
  }

  private changed(state: ConversationState): void {
    // Lines around the list may grow below: the newest message stays on screen if it was.
    const stick = this.messages.stuckToBottom();
    const others = [...state.members.values()].filter((member) => member.id !== this.me.id).map((member) => member.username);
    const named = state.title ?? (others.length > NAMES_IN_TITLE ? `${others.slice(0, NAMES_IN_TITLE).join(', ')} +${others.length - NAMES_IN_TITLE}` : others.join(', ') || this.me.username);
    this.title.textContent = named;
    this.element.dataset.unread = String(state.unreadCount);
    this.element.dataset.readSeq = String(state.lastReadSeq);
    this.element.dataset.lastSeq = String(state.lastSeq);
    this.panel.render(state);
    this.presence.changed(state);
    this.renderSeenBy(state);
    if (stick) this.messages.scrollToBottom();
    this.callbacks.onChange(state);
  }

  private renderSeenBy(state: ConversationState): void {
    const last = this.messages.lastMessage();
    if (!last || state.members.size > SEEN_BY_MAX_MEMBERS) {
      this.seenLine.textContent = '';
      return;
    }
    const names = state.seenBy(last.seq, [this.me.id, last.sender_id]).map((member) => member.username).sort();
    this.seenLine.classList.toggle('mine', last.sender_id === this.me.id);
    this.seenLine.dataset.seq = String(last.seq);
    this.seenLine.textContent = names.length === 0 ? '' : `Seen by ${names.join(', ')}`;
  }

  /** Removed (or left): the page says so and takes no more input. */
  private showRemoved(): void {
    if (this.element.querySelector('[data-testid=removed]')) return;
    const removal = this.live?.state.removed;
    const text = !removal
      ? 'You are not a member of this conversation.'
      : removal.by.id === this.me.id
        ? 'You left this conversation.'
        : `You were removed from this conversation by ${removal.by.username}.`;
    this.composerForm.replaceWith(h('p', { class: 'removed-notice', role: 'status', 'data-testid': 'removed' }, text));
    this.panel.element.hidden = true;
    this.membersToggle.hidden = true;
    this.typingLine.textContent = '';
    this.element.dataset.removed = 'true';
    this.callbacks.onRemoved(this.conversationId);
  }

  /** Scrolls to a message and highlights it (loading older pages to find it). */
  private async jumpTo(messageId: number): Promise<void> {
    if (!(await this.messages.jumpTo(messageId))) showError(this.element, 'That message is no longer in this conversation.');
  }

  /** The page before message `before`, merged into the live state; a failure is shown and reads as an empty, not final, page. */
  private async readOlder(before: number): Promise<OlderPage> {
    try {
      const page = await this.client.listMessages(this.conversationId, { limit: PAGE_SIZE, before });
      this.live?.state.observe(page);
      return { full: page.length === PAGE_SIZE, messages: this.live?.messages.add(page) ?? page };
    } catch (error) {
      showError(this.element, error);
      return { full: true, messages: [] };
    }
  }

  private async send(text: string, files: File[], replyTo: number | undefined): Promise<void> {
    const content = text || files.map((file) => file.name).join(', ');
    const clientId = crypto.randomUUID();
    // Shown at once, replaced by the stored message when its chat.message arrives.
    this.messages.addPending(clientId, content);
    try {
      const socket = (this.live ?? (await this.loaded))?.socket;
      if (!socket) throw new Error('this conversation could not be loaded');
      const message = await socket.send(content, { clientId, replyTo });
      this.messages.dropPending(clientId);
      for (const file of files) await uploadWithProgress(this.client, this.uploads, this.conversationId, message.id, file);
    } catch (error) {
      this.messages.dropPending(clientId);
      showError(this.element, error instanceof SendError ? `${error.event.code}: ${error.message}` : error);
      throw error;
    }
  }

  private isMemberName(username: string): boolean {
    if (!this.live) return false;
    this.memberNames ??= new Set([...this.live.state.members.values()].map((member) => member.username.toLowerCase()));
    return this.memberNames.has(username);
  }

  private apply(event: ConversationEvent): void {
    if (event.type.startsWith('member.')) this.memberNames = undefined;
    switch (event.type) {
      case 'chat.message':
        this.showTyping(event.message.sender, false);
        return;
      case 'member.added':
        this.messages.notice(`${event.by.username} added ${event.users.map((user) => user.username).join(', ')}`);
        return;
      case 'member.removed':
        this.messages.notice(event.by.id === event.user.id ? `${event.user.username} left` : `${event.by.username} removed ${event.user.username}`);
        return;
      case 'member.role':
        this.messages.notice(`${event.user.username} is now ${event.role === 'member' ? 'a member' : `the ${event.role}`}`);
        return;
      case 'conversation.updated':
        this.messages.notice(`The group is now called “${event.conversation.title ?? ''}”`);
        return;
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
}
