import type { ChatClient, ConversationView, MessageView, UserView } from '@chat-service/client';
import { formatTime, h, showError } from './dom.js';

/** Typing pauses this long before the user search runs. */
const SEARCH_DEBOUNCE_MS = 250;
/** Message search results shown per page ("more" asks for the next). */
const RESULTS_PER_PAGE = 20;
/** A result shows this much of its message. */
const SNIPPET_CHARS = 120;

/** What the search panel asks of the workspace around it. */
export interface SearchPanelHost {
  /** The name the conversation list shows for it. */
  conversationName(conversationId: number): string;
  /** Opens a conversation, at a message when one is given. */
  open(conversationId: number, messageId?: number): void;
  /** A direct conversation was found or created for someone picked from the people search. */
  openedDirect(conversation: ConversationView): void;
}

/** The sidebar's two searches: messages (paged results that open the conversation at the message) and people (to message them directly). */
export class SearchPanel {
  /** The message search form and its results, in that order. */
  readonly messageNodes: HTMLElement[];
  /** The people search form and the people found, in that order. */
  readonly peopleNodes: HTMLElement[];
  private readonly people = h('ul', { class: 'people', 'aria-label': 'People found', 'data-testid': 'people' });
  private readonly results = h('ul', { class: 'search-results', 'aria-label': 'Messages found', 'data-testid': 'search-results' });
  private searchTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly client: ChatClient,
    private readonly me: UserView,
    private readonly host: SearchPanelHost,
  ) {
    const search = h('input', { type: 'search', 'aria-label': 'Find people', placeholder: 'find people by name', dir: 'auto', 'data-testid': 'people-search' });
    const searchForm: HTMLFormElement = h('form', { class: 'new-conversation', role: 'search' }, search);
    const runSearch = (): void => {
      clearTimeout(this.searchTimer);
      void this.searchPeople(search.value.trim(), searchForm);
    };
    search.addEventListener('input', () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(runSearch, SEARCH_DEBOUNCE_MS);
    });
    searchForm.addEventListener('submit', (event) => {
      event.preventDefault();
      runSearch();
    });
    const messageQuery = h('input', { type: 'search', 'aria-label': 'Search messages', placeholder: 'search messages', dir: 'auto', maxlength: 256, 'data-testid': 'message-search' });
    const messageSearch: HTMLFormElement = h('form', { class: 'new-conversation', role: 'search' }, messageQuery, h('button', { type: 'submit', 'data-testid': 'run-search' }, 'Search'));
    messageSearch.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.searchMessages({ q: messageQuery.value.trim(), limit: RESULTS_PER_PAGE }, messageSearch, false);
    });
    this.messageNodes = [messageSearch, this.results];
    this.peopleNodes = [searchForm, this.people];
  }

  destroy(): void {
    clearTimeout(this.searchTimer);
  }

  /** One page of message search results (appended to the list for `more`). */
  private async searchMessages(query: Record<string, string | number | boolean | undefined>, form: HTMLElement, more: boolean): Promise<void> {
    if (!more) this.results.replaceChildren();
    if (query.q === '') return;
    try {
      const page = await this.client.searchMessagesPage(query as { q: string });
      this.results.querySelector('[data-testid=more-results]')?.remove();
      this.results.append(...page.items.map((message) => this.resultItem(message)));
      if (page.next) {
        const next = page.next;
        this.results.append(h('li', {}, h('button', { type: 'button', class: 'link', 'data-testid': 'more-results', onclick: () => void this.searchMessages(next, form, true) }, 'more results')));
      } else if (this.results.childElementCount === 0) {
        this.results.append(h('li', { class: 'muted', 'data-testid': 'no-results' }, 'no messages found'));
      }
    } catch (error) {
      showError(form, error);
    }
  }

  private resultItem(message: MessageView): HTMLElement {
    const snippet = message.content.length > SNIPPET_CHARS ? `${message.content.slice(0, SNIPPET_CHARS)}…` : message.content;
    const open = (): void => this.host.open(message.conversation_id, message.id);
    return h(
      'li',
      {
        'data-testid': 'search-result',
        'data-id': message.id,
        'data-conversation-id': message.conversation_id,
        role: 'button',
        tabindex: 0,
        onclick: open,
        onkeydown: (event: Event) => {
          if (event instanceof KeyboardEvent && (event.key === 'Enter' || event.key === ' ')) {
            event.preventDefault();
            open();
          }
        },
      },
      h('span', { class: 'snippet', dir: 'auto', 'data-testid': 'snippet' }, snippet),
      h(
        'span',
        { class: 'where muted' },
        h('span', { dir: 'auto', 'data-testid': 'result-conversation' }, this.host.conversationName(message.conversation_id)),
        ' · ',
        h('time', { datetime: message.timestamp }, formatTime(message.timestamp)),
        ' · ',
        h('span', { dir: 'auto' }, message.sender),
      ),
    );
  }

  private async searchPeople(prefix: string, form: HTMLElement): Promise<void> {
    if (prefix === '') return this.people.replaceChildren();
    try {
      const users = (await this.client.searchUsers(prefix)).filter((user) => user.id !== this.me.id);
      this.people.replaceChildren(
        ...users.map((user) =>
          h(
            'li',
            { 'data-testid': 'person', 'data-id': user.id },
            h('span', { class: 'names', dir: 'auto' }, user.username),
            h('button', { type: 'button', class: 'link', 'aria-label': `Message ${user.username}`, 'data-testid': 'message-person', onclick: () => void this.openDirect(user, form) }, 'message'),
          ),
        ),
      );
      if (users.length === 0) this.people.append(h('li', { class: 'muted' }, 'nobody by that name'));
    } catch (error) {
      showError(form, error);
    }
  }

  /** The one direct conversation with `user`: found, or created now. */
  private async openDirect(user: UserView, form: HTMLElement): Promise<void> {
    try {
      const { conversation } = await this.client.openDirect(user.id);
      this.host.openedDirect(conversation);
    } catch (error) {
      showError(form, error);
    }
  }
}
