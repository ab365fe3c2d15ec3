import type { MessageView } from '@chat-service/client';
import { h } from './dom.js';
import { type MessageActions, renderMessage } from './message-item.js';
import { ReadTracker } from './read-tracker.js';

/** Scrolling this close to the top loads the previous page. */
const LOAD_OLDER_PX = 80;
/** Closer than this to the bottom counts as at the bottom: new messages keep it there. */
const NEAR_BOTTOM_PX = 60;
/** Jumping to a message loads at most this many older pages to find it. */
const JUMP_MAX_PAGES = 20;
/** How long a jumped-to message stays highlighted. */
const HIGHLIGHT_MS = 2_500;

/** A page of older messages as read, and what of it is new to the live state (what to show). */
export interface OlderPage {
  full: boolean;
  messages: Iterable<MessageView>;
}

/**
 * A conversation's messages on screen, in id order: placeholders for sends not yet stored,
 * older pages read as the user scrolls up, a jump to a message (loading pages until it is
 * there), and the bottom kept in view while the user is there. It moves the read marker
 * through a ReadTracker as messages are seen.
 */
export class MessageList {
  readonly element = h('ol', { class: 'messages', 'data-testid': 'messages' });
  readonly tracker: ReadTracker;
  private readonly items = new Map<number, { message: MessageView; element: HTMLElement }>();
  private readonly pending = new Map<string, HTMLElement>();
  private atBottom = true;
  private hasOlder = true;
  /** The older page being read, if any: a jump waits for it rather than giving up. */
  private loadingOlder: Promise<void> | undefined;
  private readonly resizes = new ResizeObserver(() => {
    if (this.atBottom) this.scrollToBottom();
  });

  constructor(
    private readonly myId: number,
    private readonly actions: MessageActions,
    /** Reads the page before the oldest message shown; a failure is the reader's to show. */
    private readonly readOlder: (before: number) => Promise<OlderPage>,
    onSeen: (seq: number) => void,
  ) {
    this.tracker = new ReadTracker(this.element, onSeen);
    this.element.addEventListener('scroll', () => {
      this.atBottom = this.isNearBottom();
      if (this.element.scrollTop < LOAD_OLDER_PX) void this.loadOlder();
    });
    // The list shrinks when the lines around it grow (title, "seen by", an error strip):
    // one that was at the bottom stays there, so the newest message stays on screen.
    this.resizes.observe(this.element);
  }

  /** The newest message's seq (0 with none shown). */
  get newestSeq(): number {
    let newest = 0;
    for (const item of this.items.values()) newest = Math.max(newest, item.message.seq);
    return newest;
  }

  /** The newest message not deleted, if any. */
  lastMessage(): MessageView | undefined {
    let last: MessageView | undefined;
    for (const item of this.items.values()) if (!item.message.is_deleted && (!last || item.message.id > last.id)) last = item.message;
    return last;
  }

  /** Whether the bottom is in view: call before the lines around the list change, scroll back after. */
  stuckToBottom(): boolean {
    return this.atBottom || this.isNearBottom();
  }

  /** The first page (or, after a reload, the newest page replacing everything shown). */
  showNewest(messages: Iterable<MessageView>, full: boolean): void {
    for (const { element } of this.items.values()) element.remove();
    this.items.clear();
    this.hasOlder = full;
    for (const message of messages) this.upsert(message);
    this.scrollToBottom();
  }

  /** Shown at once for a send, until its stored message arrives (or `dropPending`). */
  addPending(clientId: string, content: string): void {
    const placeholder = h('li', { class: 'message mine pending', 'data-testid': 'pending' }, h('div', { class: 'content', dir: 'auto' }, content));
    this.pending.set(clientId, placeholder);
    this.element.append(placeholder);
    this.scrollToBottom();
  }

  dropPending(clientId: string): void {
    this.pending.get(clientId)?.remove();
    this.pending.delete(clientId);
  }

  /** Adds a message in id order, or re-renders it if already shown (history and replay overlap). */
  upsert(message: MessageView): void {
    const mine = message.sender_id === this.myId;
    const existing = this.items.get(message.id);
    if (existing) {
      existing.message = message;
      renderMessage(existing.element, message, mine, this.actions);
      return;
    }
    const nearBottom = this.isNearBottom();
    const element = h('li');
    renderMessage(element, message, mine, this.actions);
    this.items.set(message.id, { message, element });
    this.tracker.watch(element, message.seq);
    if (message.client_id !== null) this.pending.get(message.client_id)?.remove();
    const next = [...this.items.keys()].filter((id) => id > message.id).sort((a, b) => a - b)[0];
    const before = next === undefined ? this.element.querySelector('.pending') : this.items.get(next)!.element;
    this.element.insertBefore(element, before);
    if (nearBottom || mine) this.scrollToBottom();
  }

  /** A line about the conversation itself (who joined, left, was promoted; a rename). */
  notice(text: string): void {
    const nearBottom = this.isNearBottom();
    this.element.insertBefore(h('li', { class: 'system', dir: 'auto', 'data-testid': 'system' }, text), this.element.querySelector('.pending'));
    if (nearBottom) this.scrollToBottom();
  }

  /** Scrolls to a message and highlights it, loading older pages until it is there; false: not found. */
  async jumpTo(messageId: number): Promise<boolean> {
    for (let pages = 0; !this.items.has(messageId) && this.hasOlder && pages < JUMP_MAX_PAGES; pages++) {
      const before = this.items.size;
      await this.loadOlder();
      // A failed read (shown already) or an empty page: nothing more to find.
      if (this.items.size === before && !this.loadingOlder) break;
    }
    const item = this.items.get(messageId);
    if (!item) return false;
    item.element.scrollIntoView({ block: 'center' });
    this.atBottom = this.isNearBottom();
    for (const other of this.element.querySelectorAll('.highlight')) other.classList.remove('highlight');
    item.element.classList.add('highlight');
    item.element.dataset.highlighted = 'true';
    setTimeout(() => {
      item.element.classList.remove('highlight');
      delete item.element.dataset.highlighted;
    }, HIGHLIGHT_MS);
    return true;
  }

  scrollToBottom(): void {
    this.element.scrollTop = this.element.scrollHeight;
    this.atBottom = true;
  }

  destroy(): void {
    this.tracker.destroy();
    this.resizes.disconnect();
  }

  private isNearBottom(): boolean {
    return this.element.scrollHeight - this.element.scrollTop - this.element.clientHeight < NEAR_BOTTOM_PX;
  }

  private loadOlder(): Promise<void> {
    if (this.loadingOlder) return this.loadingOlder;
    if (!this.hasOlder || this.items.size === 0) return Promise.resolve();
    this.loadingOlder = this.readOlderPage().finally(() => (this.loadingOlder = undefined));
    return this.loadingOlder;
  }

  private async readOlderPage(): Promise<void> {
    const page = await this.readOlder(Math.min(...this.items.keys()));
    this.hasOlder = page.full;
    // Keep what the user is looking at in place while rows are added above it.
    const fromBottom = this.element.scrollHeight - this.element.scrollTop;
    for (const message of page.messages) this.upsert(message);
    this.element.scrollTop = this.element.scrollHeight - fromBottom;
  }
}
