import {
  ApiError,
  type ChatClient,
  isAbortError,
  type ChatSocketState,
  type ConversationEvent,
  type ConversationState,
  type LiveConversation,
  type MessageView,
  type PresenceView,
  SendError,
  type UserView,
} from '@chat-service/client';
import { type ComposerForm, composer } from './composer.js';
import { formatSize, h, showError } from './dom.js';
import { type MemberActions, MembersPanel } from './members-panel.js';
import { type MessageActions, renderMessage } from './message-item.js';
import { PanePresence } from './pane-presence.js';
import { ReadTracker } from './read-tracker.js';

const PAGE_SIZE = 30;
/** Scrolling this close to the top loads the previous page. */
const LOAD_OLDER_PX = 80;
/** A typing indicator nobody cleared (the typist's tab closed) fades after this. */
const TYPING_TTL_MS = 6_000;
/** "Seen by" names everyone, so it is shown only in conversations this small. */
const SEEN_BY_MAX_MEMBERS = 20;
/** An untitled group is named after this many of its members. */
const NAMES_IN_TITLE = 4;
/** Jumping to a replied-to message loads at most this many older pages to find it. */
const JUMP_MAX_PAGES = 20;
/** How long a jumped-to message stays highlighted. */
const HIGHLIGHT_MS = 2_500;

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
  private readonly list = h('ol', { class: 'messages', 'data-testid': 'messages' });
  private readonly typingLine = h('div', { class: 'typing', 'data-testid': 'typing', 'aria-live': 'polite' });
  private readonly seenLine = h('div', { class: 'seen-by', 'data-testid': 'seen-by', 'aria-live': 'polite' });
  private readonly title = h('h2', { dir: 'auto', 'data-testid': 'conversation-title' });
  private readonly membersToggle = h('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false', 'aria-controls': '', 'data-testid': 'members-toggle' }, 'Members');
  private readonly composerForm: ComposerForm;
  private readonly uploads = h('div', { class: 'uploads', 'data-testid': 'uploads', 'aria-live': 'polite' });
  private readonly items = new Map<number, { message: MessageView; element: HTMLElement }>();
  private readonly pending = new Map<string, HTMLElement>();
  private readonly typists = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly tracker = new ReadTracker(this.list, (seq) => this.read(seq));
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
  private atBottom = true;
  private readonly resizes = new ResizeObserver(() => {
    if (this.atBottom) this.scrollToBottom();
  });
  private hasOlder = true;
  /** The older page being read, if any: a jump waits for it rather than giving up. */
  private loadingOlder: Promise<void> | undefined;
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
    this.list.addEventListener('scroll', () => {
      this.atBottom = this.isNearBottom();
      if (this.list.scrollTop < LOAD_OLDER_PX) void this.loadOlder();
    });
    // The list shrinks when the lines around it grow (title, "seen by", an error strip):
    // one that was at the bottom stays there, so the newest message stays on screen.
    this.resizes.observe(this.list);
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
      this.list,
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
      this.tracker.floor = live.state.lastReadSeq;
      live.on('event', (event) => this.apply(event));
      live.on('messages', (changed) => {
        for (const message of changed) this.upsert(message);
      });
      live.on('reset', (reset) => {
        this.memberNames = undefined;
        this.replaceAll(reset.messages);
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
      this.hasOlder = page.length === PAGE_SIZE;
      live.state.observe(page);
      for (const message of live.messages.add(page)) this.upsert(message);
      this.scrollToBottom();
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
    this.tracker.destroy();
    this.resizes.disconnect();
    for (const timer of this.typists.values()) clearTimeout(timer);
  }

  /** The tracker saw `seq`: reading the newest message reads everything up to the last event. */
  private read(seq: number): void {
    const live = this.live;
    if (!live || live.state.removed) return;
    const newest = Math.max(0, ...[...this.items.values()].map((item) => item.message.seq));
    live.read(seq >= newest ? live.state.lastSeq : seq);
  }

  private changed(state: ConversationState): void {
    // Lines around the list may grow below: the newest message stays on screen if it was.
    const stick = this.atBottom || this.isNearBottom();
    const others = [...state.members.values()].filter((member) => member.id !== this.me.id).map((member) => member.username);
    const named = state.title ?? (others.length > NAMES_IN_TITLE ? `${others.slice(0, NAMES_IN_TITLE).join(', ')} +${others.length - NAMES_IN_TITLE}` : others.join(', ') || this.me.username);
    this.title.textContent = named;
    this.element.dataset.unread = String(state.unreadCount);
    this.element.dataset.readSeq = String(state.lastReadSeq);
    this.element.dataset.lastSeq = String(state.lastSeq);
    this.panel.render(state);
    this.presence.changed(state);
    this.renderSeenBy(state);
    if (stick) this.scrollToBottom();
    this.callbacks.onChange(state);
  }

  private renderSeenBy(state: ConversationState): void {
    let last: MessageView | undefined;
    for (const item of this.items.values()) if (!item.message.is_deleted && (!last || item.message.id > last.id)) last = item.message;
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

  /** Scrolls to a message and highlights it, loading older pages until it is there. */
  private async jumpTo(messageId: number): Promise<void> {
    for (let pages = 0; !this.items.has(messageId) && this.hasOlder && pages < JUMP_MAX_PAGES; pages++) {
      const before = this.items.size;
      await this.loadOlder();
      // A failed read (shown already) or an empty page: nothing more to find.
      if (this.items.size === before && !this.loadingOlder) break;
    }
    const item = this.items.get(messageId);
    if (!item) return showError(this.element, 'That message is no longer in this conversation.');
    item.element.scrollIntoView({ block: 'center' });
    this.atBottom = this.isNearBottom();
    for (const other of this.list.querySelectorAll('.highlight')) other.classList.remove('highlight');
    item.element.classList.add('highlight');
    item.element.dataset.highlighted = 'true';
    setTimeout(() => {
      item.element.classList.remove('highlight');
      delete item.element.dataset.highlighted;
    }, HIGHLIGHT_MS);
  }

  /** After a reload (fallen too far behind): the newest page replaces the list. */
  private replaceAll(messages: readonly MessageView[]): void {
    for (const { element } of this.items.values()) element.remove();
    this.items.clear();
    this.hasOlder = true;
    for (const message of messages) this.upsert(message);
    this.scrollToBottom();
  }

  private async send(text: string, files: File[], replyTo: number | undefined): Promise<void> {
    const content = text || files.map((file) => file.name).join(', ');
    const clientId = crypto.randomUUID();
    // Shown at once, replaced by the stored message when its chat.message arrives.
    const placeholder = h('li', { class: 'message mine pending', 'data-testid': 'pending' }, h('div', { class: 'content', dir: 'auto' }, content));
    this.pending.set(clientId, placeholder);
    this.list.append(placeholder);
    this.scrollToBottom();
    try {
      const socket = (this.live ?? (await this.loaded))?.socket;
      if (!socket) throw new Error('this conversation could not be loaded');
      const message = await socket.send(content, { clientId, replyTo });
      placeholder.remove();
      for (const file of files) await this.upload(message, file);
    } catch (error) {
      placeholder.remove();
      showError(this.element, error instanceof SendError ? `${error.event.code}: ${error.message}` : error);
      throw error;
    } finally {
      this.pending.delete(clientId);
    }
  }

  /** One file with a progress bar and a cancel button; a cancelled upload keeps nothing. */
  private async upload(message: MessageView, file: File): Promise<void> {
    const controller = new AbortController();
    const bar = h('progress', { max: 1, value: 0, 'data-testid': 'upload-progress', 'aria-label': `Uploading ${file.name}` });
    const cancel = h('button', { type: 'button', class: 'link danger', 'data-testid': 'cancel-upload', 'aria-label': `Cancel uploading ${file.name}`, onclick: () => controller.abort() }, 'cancel');
    const row = h('div', { class: 'upload', 'data-testid': 'upload', 'data-filename': file.name }, h('span', { dir: 'auto' }, `${file.name} (${formatSize(file.size)})`), bar, cancel);
    this.uploads.append(row);
    try {
      await this.client.uploadAttachment(this.conversationId, message.id, file, file.name, {
        signal: controller.signal,
        onProgress: ({ loaded, total }) => {
          bar.max = total;
          bar.value = loaded;
          row.dataset.loaded = String(loaded);
        },
      });
      row.remove();
    } catch (error) {
      if (!isAbortError(error)) {
        row.remove();
        throw error;
      }
      row.dataset.state = 'cancelled';
      row.replaceChildren(h('span', { dir: 'auto' }, `${file.name}: upload cancelled`));
      setTimeout(() => row.remove(), HIGHLIGHT_MS);
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
        this.notice(`${event.by.username} added ${event.users.map((user) => user.username).join(', ')}`);
        return;
      case 'member.removed':
        this.notice(event.by.id === event.user.id ? `${event.user.username} left` : `${event.by.username} removed ${event.user.username}`);
        return;
      case 'member.role':
        this.notice(`${event.user.username} is now ${event.role === 'member' ? 'a member' : `the ${event.role}`}`);
        return;
      case 'conversation.updated':
        this.notice(`The group is now called “${event.conversation.title ?? ''}”`);
        return;
    }
  }

  /** A line about the conversation itself (who joined, left, was promoted; a rename). */
  private notice(text: string): void {
    const nearBottom = this.isNearBottom();
    this.list.insertBefore(h('li', { class: 'system', dir: 'auto', 'data-testid': 'system' }, text), this.list.querySelector('.pending'));
    if (nearBottom) this.scrollToBottom();
  }

  private isNearBottom(): boolean {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 60;
  }

  /** Adds a message in id order, or re-renders it if already shown (history and replay overlap). */
  private upsert(message: MessageView): void {
    const existing = this.items.get(message.id);
    if (existing) {
      existing.message = message;
      renderMessage(existing.element, message, message.sender_id === this.me.id, this.actions);
      return;
    }
    const nearBottom = this.isNearBottom();
    const element = h('li');
    renderMessage(element, message, message.sender_id === this.me.id, this.actions);
    this.items.set(message.id, { message, element });
    this.tracker.watch(element, message.seq);
    const placeholder = message.client_id === null ? undefined : this.pending.get(message.client_id);
    placeholder?.remove();
    const next = [...this.items.keys()].filter((id) => id > message.id).sort((a, b) => a - b)[0];
    const before = next === undefined ? this.list.querySelector('.pending') : this.items.get(next)!.element;
    this.list.insertBefore(element, before);
    if (nearBottom || message.sender_id === this.me.id) this.scrollToBottom();
  }

  private loadOlder(): Promise<void> {
    if (this.loadingOlder) return this.loadingOlder;
    if (!this.hasOlder || this.items.size === 0) return Promise.resolve();
    this.loadingOlder = this.readOlderPage().finally(() => (this.loadingOlder = undefined));
    return this.loadingOlder;
  }

  private async readOlderPage(): Promise<void> {
    try {
      const oldest = Math.min(...this.items.keys());
      const page = await this.client.listMessages(this.conversationId, { limit: PAGE_SIZE, before: oldest });
      this.hasOlder = page.length === PAGE_SIZE;
      // Keep what the user is looking at in place while rows are added above it.
      const fromBottom = this.list.scrollHeight - this.list.scrollTop;
      this.live?.state.observe(page);
      for (const message of this.live?.messages.add(page) ?? page) this.upsert(message);
      this.list.scrollTop = this.list.scrollHeight - fromBottom;
    } catch (error) {
      showError(this.element, error);
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
    this.atBottom = true;
  }
}
