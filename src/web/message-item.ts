import type { AttachmentView, MessageView } from '@chat-service/client';
import { formatSize, formatTime, h } from './dom.js';

export interface MessageActions {
  edit(message: MessageView, content: string): void;
  delete(message: MessageView): void;
}

/** One message as a list item; `render` again replaces its content after an edit or delete. */
export function renderMessage(item: HTMLElement, message: MessageView, mine: boolean, actions: MessageActions): void {
  item.className = `message${mine ? ' mine' : ''}${message.is_deleted ? ' deleted' : ''}`;
  item.dataset.id = String(message.id);
  item.dataset.testid = 'message';
  const content = message.is_deleted
    ? h('div', { class: 'content', 'data-testid': 'content' }, h('em', {}, 'message deleted'))
    : h('div', { class: 'content', dir: 'auto', 'data-testid': 'content' }, message.content);
  const tools =
    mine && !message.is_deleted
      ? h(
          'span',
          { class: 'tools' },
          h('button', { type: 'button', class: 'link', 'data-testid': 'edit', onclick: () => startEdit(item, message, actions) }, 'edit'),
          deleteButton(message, actions),
        )
      : null;
  item.replaceChildren(
    h(
      'div',
      { class: 'meta' },
      h('span', { class: 'sender', dir: 'auto' }, message.sender),
      h('time', { datetime: message.timestamp }, formatTime(message.timestamp)),
      message.is_edited && !message.is_deleted && h('span', { class: 'edited', 'data-testid': 'edited' }, 'edited'),
      tools,
    ),
    content,
    message.attachments.length > 0 ? h('div', { class: 'attachments' }, ...message.attachments.map(renderAttachment)) : '',
  );
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
