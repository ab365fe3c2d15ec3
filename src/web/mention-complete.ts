import { insertMention, mentionCompletion, type MentionQuery, type PresenceView } from '@chat-service/client';
import { h } from './dom.js';
import { presenceBadge } from './presence-dot.js';

/** Whom `@` completes to. */
export interface MentionSource {
  /** The conversation's members, the writer included (they are left out of the list). */
  members(): Iterable<{ id: number; username: string }>;
  readonly myId: number;
  /** Their presence, for a dot beside each name. */
  presence?(userId: number): PresenceView | undefined;
}

type Member = { id: number; username: string };

let lists = 0;

/**
 * `@` completion in a message box: while `@pre` is typed, a list of the members it may name
 * (best first) above the box. Arrow keys move through it, Enter or Tab takes one, Escape closes
 * it, a click takes one; taking one puts `@username ` in place of what was typed. The list
 * listens on the form in the capture phase, so its keys never reach the box's own (Enter sends).
 */
export function mentionComplete(form: HTMLFormElement, box: HTMLTextAreaElement, source: MentionSource): void {
  const id = `mention-list-${++lists}`;
  const list = h('ul', { class: 'mention-list', id, role: 'listbox', 'aria-label': 'Mention someone', 'data-testid': 'mention-list', hidden: true });
  box.before(list);
  box.setAttribute('aria-autocomplete', 'list');
  box.setAttribute('aria-controls', id);
  let query: MentionQuery | undefined;
  let matches: Member[] = [];
  let selected = 0;
  /** Escape closed the list for the `@` at this index: it stays closed until the text changes. */
  let dismissedAt: number | undefined;

  const close = (): void => {
    query = undefined;
    matches = [];
    list.hidden = true;
    list.replaceChildren();
    box.removeAttribute('aria-activedescendant');
  };
  const choose = (member: Member): void => {
    if (!query) return;
    const next = insertMention(box.value, query, member.username);
    close();
    box.value = next.text;
    box.setSelectionRange(next.caret, next.caret);
    box.focus();
    // As typing would: the composer's typing indicator (and this list) hear of it.
    box.dispatchEvent(new Event('input', { bubbles: true }));
  };
  const render = (): void => {
    list.replaceChildren(
      ...matches.map((member, index) => {
        const badge = presenceBadge();
        badge.show(source.presence?.(member.id), true);
        const option = h(
          'li',
          { id: `${id}-${index}`, role: 'option', 'aria-selected': String(index === selected), class: index === selected ? 'selected' : undefined, 'data-testid': 'mention-option', 'data-username': member.username },
          badge.dot,
          h('span', { class: 'name', dir: 'ltr' }, member.username),
        );
        // Pressed, the box would lose focus (and close the list) before the click lands.
        option.addEventListener('mousedown', (event) => event.preventDefault());
        option.addEventListener('click', () => choose(member));
        return option;
      }),
    );
    list.hidden = false;
    box.setAttribute('aria-activedescendant', `${id}-${selected}`);
  };
  const update = (): void => {
    const caret = box.selectionStart === box.selectionEnd ? box.selectionStart : -1;
    const found = caret < 0 ? undefined : mentionCompletion(box.value, caret, source.members(), { exclude: (member) => member.id === source.myId });
    if (!found || found.matches.length === 0 || found.query.start === dismissedAt) return close();
    const previous = matches[selected]?.id;
    query = found.query;
    matches = found.matches;
    // The same member stays chosen while the list narrows around them.
    selected = Math.max(0, matches.findIndex((member) => member.id === previous));
    render();
  };

  box.addEventListener('input', () => {
    dismissedAt = undefined;
    update();
  });
  // The caret moved without typing (arrows, Home/End, a click in the text).
  box.addEventListener('keyup', (event) => {
    if (['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(event.key)) update();
  });
  box.addEventListener('click', update);
  box.addEventListener('blur', close);
  form.addEventListener('submit', close);
  form.addEventListener(
    'keydown',
    (event) => {
      if (event.target !== box || list.hidden || event.isComposing || matches.length === 0) return;
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        selected = (selected + (event.key === 'ArrowDown' ? 1 : -1) + matches.length) % matches.length;
        render();
      } else if (event.key === 'Enter' || event.key === 'Tab') {
        choose(matches[selected]!);
      } else if (event.key === 'Escape') {
        dismissedAt = query?.start;
        close();
      } else {
        return;
      }
      event.preventDefault();
      event.stopPropagation();
    },
    true,
  );
}
