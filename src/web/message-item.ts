import type { AttachmentView, MessageVersionView, MessageView } from '@chat-service/client';
import { formatSize, formatTime, h } from './dom.js';
import { type MentionReader, mentionText } from './mention-text.js';

export interface MessageActions {
  edit(message: MessageView, content: string): void;
  delete(message: MessageView): void;
  /** Starts a reply to it in the composer. */
  reply(message: MessageView): void;
  /** Adds (`on`) or takes back the caller's reaction. */
  react(message: MessageView, emoji: string, on: boolean): void;
  reactedByMe(message: MessageView, emoji: string): boolean;
  /** Earlier versions of an edited message. */
  history(message: MessageView): Promise<MessageVersionView[]>;
  /** Scrolls to (and highlights) the message a reply answers. */
  jumpTo(messageId: number): void;
  /** Marks mentions in the text: the reader's own stand out. */
  readonly mentions: MentionReader;
}

/** The add-reaction picker's choice. */
export const COMMON_EMOJI = ['👍', '❤️', '😂', '😮', '😢', '🙏'];

/** One message as a list item; `render` again replaces its content after an edit or delete. */
export function renderMessage(item: HTMLElement, message: MessageView, mine: boolean, actions: MessageActions): void {
  const text = message.is_deleted ? undefined : mentionText(message.content, actions.mentions);
  item.className = `message${mine ? ' mine' : ''}${message.is_deleted ? ' deleted' : ''}${text?.mentionsMe ? ' mentions-me' : ''}`;
  item.dataset.id = String(message.id);
  item.dataset.testid = 'message';
  item.dataset.mentionsMe = String(text?.mentionsMe ?? false);
  const content = !text
    ? h('div', { class: 'content', 'data-testid': 'content' }, h('em', {}, 'message deleted'))
    : h('div', { class: 'content', dir: 'auto', 'data-testid': 'content' }, ...text.nodes);
  const tools = message.is_deleted
    ? null
    : h(
        'span',
        { class: 'tools' },
        h('button', { type: 'button', class: 'link', 'data-testid': 'reply', 'aria-label': `Reply to ${message.sender}`, onclick: () => actions.reply(message) }, 'reply'),
        mine && h('button', { type: 'button', class: 'link', 'data-testid': 'edit', onclick: () => startEdit(item, message, actions) }, 'edit'),
        mine && deleteButton(message, actions),
      );
  item.replaceChildren(
    h(
      'div',
      { class: 'meta' },
      h('span', { class: 'sender', dir: 'auto' }, message.sender),
      h('time', { datetime: message.timestamp }, formatTime(message.timestamp)),
      message.is_edited && !message.is_deleted && editedButton(item, message, actions),
      tools,
    ),
    message.reply_to ? replyPreview(message.reply_to, actions) : '',
    content,
    message.attachments.length > 0 ? h('div', { class: 'attachments' }, ...message.attachments.map(renderAttachment)) : '',
    message.is_deleted ? '' : reactionBar(message, actions),
  );
}

/** The quoted message a reply answers: a click jumps to it. No text once it is deleted. */
export function replyPreview(preview: NonNullable<MessageView['reply_to']>, actions?: Pick<MessageActions, 'jumpTo'>): HTMLElement {
  return h(
    actions ? 'button' : 'div',
    {
      type: actions ? 'button' : undefined,
      class: `reply-preview${preview.is_deleted ? ' deleted' : ''}`,
      'data-testid': 'reply-preview',
      'data-reply-to': preview.id,
      'aria-label': actions ? `Go to the message from ${preview.sender} this answers` : undefined,
      onclick: actions ? () => actions.jumpTo(preview.id) : undefined,
    },
    h('span', { class: 'sender', dir: 'auto' }, preview.sender),
    preview.is_deleted ? h('em', {}, 'message deleted') : h('span', { class: 'quote', dir: 'auto' }, preview.content),
  );
}

/** Each reaction with its count (the caller's own pressed; a click toggles it), and a picker to add one. */
function reactionBar(message: MessageView, actions: MessageActions): HTMLElement {
  const picker = h(
    'div',
    { class: 'emoji-picker', role: 'group', 'aria-label': 'Pick a reaction', 'data-testid': 'emoji-picker', hidden: true },
    ...COMMON_EMOJI.map((emoji) =>
      h('button', { type: 'button', class: 'secondary', 'data-testid': 'pick-emoji', 'data-emoji': emoji, 'aria-label': `React with ${emoji}`, onclick: () => {
        picker.hidden = true;
        actions.react(message, emoji, !actions.reactedByMe(message, emoji));
      } }, emoji),
    ),
  );
  return h(
    'div',
    { class: 'reactions', 'data-testid': 'reactions' },
    ...message.reactions.map((reaction) => {
      const mine = actions.reactedByMe(message, reaction.emoji);
      return h(
        'button',
        {
          type: 'button',
          class: `reaction${mine ? ' mine' : ''}`,
          'data-testid': 'reaction',
          'data-emoji': reaction.emoji,
          'data-count': reaction.count,
          'aria-pressed': String(mine),
          title: reaction.users.join(', '),
          onclick: () => actions.react(message, reaction.emoji, !mine),
        },
        `${reaction.emoji} ${reaction.count}`,
      );
    }),
    h('button', { type: 'button', class: 'link add-reaction', 'data-testid': 'add-reaction', 'aria-label': 'Add a reaction', onclick: () => (picker.hidden = !picker.hidden) }, '☺+'),
    picker,
  );
}

/** "edited": a click lists the earlier versions with their times. */
function editedButton(item: HTMLElement, message: MessageView, actions: MessageActions): HTMLElement {
  const button = h('button', { type: 'button', class: 'link edited', 'data-testid': 'edited', 'aria-expanded': 'false', title: 'show earlier versions' }, 'edited');
  button.addEventListener('click', () => {
    const open = item.querySelector('[data-testid=history]');
    if (open) {
      open.remove();
      button.setAttribute('aria-expanded', 'false');
      return;
    }
    button.setAttribute('aria-expanded', 'true');
    const list = h('ol', { class: 'history', 'data-testid': 'history', 'aria-label': 'Earlier versions' }, h('li', { class: 'muted' }, 'loading…'));
    item.querySelector('.content')?.after(list);
    actions.history(message).then(
      (versions) =>
        list.replaceChildren(
          ...(versions.length === 0
            ? [h('li', { class: 'muted' }, 'no earlier versions')]
            : versions.map((version) =>
                h('li', { 'data-testid': 'version' }, h('time', { datetime: version.edited_at }, formatTime(version.edited_at)), ' ', h('span', { dir: 'auto', class: 'version-text' }, version.content)),
              )),
        ),
      (error: unknown) => list.replaceChildren(h('li', { class: 'muted' }, `could not load: ${error instanceof Error ? error.message : String(error)}`)),
    );
  });
  return button;
}

function renderAttachment(attachment: AttachmentView): HTMLElement {
  if (attachment.content_type.startsWith('image/')) {
    return h(
      'a',
      { href: attachment.file, target: '_blank', rel: 'noopener', class: 'image' },
      h('img', { src: attachment.file, alt: attachment.filename, loading: 'lazy', 'data-testid': 'attachment-image' }),
    );
  }
  return h(
    'a',
    { href: attachment.file, target: '_blank', rel: 'noopener', class: 'file', 'data-testid': 'attachment-link', dir: 'auto' },
    `📎 ${attachment.filename} (${formatSize(attachment.size)})`,
  );
}

/** Two steps (delete, then confirm within a few seconds) instead of a modal dialog. */
function deleteButton(message: MessageView, actions: MessageActions): HTMLButtonElement {
  const button = h('button', { type: 'button', class: 'link danger', 'data-testid': 'delete' }, 'delete');
  let armed: ReturnType<typeof setTimeout> | undefined;
  button.addEventListener('click', () => {
    if (armed !== undefined) {
      clearTimeout(armed);
      actions.delete(message);
      return;
    }
    button.textContent = 'confirm delete';
    button.dataset.testid = 'confirm-delete';
    armed = setTimeout(() => {
      armed = undefined;
      button.textContent = 'delete';
      button.dataset.testid = 'delete';
    }, 4_000);
  });
  return button;
}

function startEdit(item: HTMLElement, message: MessageView, actions: MessageActions): void {
  const input = h('textarea', { class: 'edit-input', dir: 'auto', 'data-testid': 'edit-input', rows: 2 });
  input.value = message.content;
  const form: HTMLFormElement = h(
    'form',
    { class: 'edit' },
    input,
    h('button', { type: 'submit', 'data-testid': 'save-edit' }, 'save'),
    h('button', { type: 'button', class: 'secondary', onclick: () => form.replaceWith(content) }, 'cancel'),
  );
  const content = item.querySelector('.content')!;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text !== '' && text !== message.content) actions.edit(message, text);
    form.replaceWith(content);
  });
  content.replaceWith(form);
  input.focus();
}
