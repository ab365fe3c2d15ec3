import type { MessageView } from '@chat-service/client';
import { formatSize, h } from './dom.js';
import { mentionComplete, type MentionSource } from './mention-complete.js';
import { replyPreview } from './message-item.js';

export interface ComposerActions {
  /** Sends text (possibly empty when files are attached), the attached files, and the id of the message it answers. */
  send(text: string, files: File[], replyTo: number | undefined): Promise<void>;
  typing(isTyping: boolean): void;
  /** Whom `@` completes to. */
  mentions?: MentionSource;
}

/** The composer's form, and the reply it is writing (shown above the box, cancelable). */
export interface ComposerForm extends HTMLFormElement {
  setReply(message: MessageView | undefined): void;
}

/** After this long without a keystroke the user no longer counts as typing. */
const TYPING_IDLE_MS = 3_000;
/** "Still typing" is repeated at most this often while keys keep coming. */
const TYPING_REPEAT_MS = 2_000;

/** The message box: text, a reply being written, files (picked, dropped or pasted) with image previews, send. */
export function composer(actions: ComposerActions): ComposerForm {
  const text = h('textarea', { rows: 2, dir: 'auto', placeholder: 'Write a message…', 'data-testid': 'composer' });
  const files = h('input', { type: 'file', multiple: true, 'data-testid': 'file-input' });
  const previews = h('div', { class: 'previews', 'data-testid': 'previews' });
  const send = h('button', { type: 'submit', 'data-testid': 'send' }, 'Send');
  const replyBox = h('div', { class: 'replying', 'data-testid': 'replying', hidden: true });
  const form = h(
    'form',
    { class: 'composer' },
    replyBox,
    previews,
    h('div', { class: 'row' }, text, h('label', { class: 'attach', title: 'attach files' }, 'Attach', files), send),
  );
  if (actions.mentions) mentionComplete(form, text, actions.mentions);
  let previewUrls: string[] = [];
  /** Picked, dropped and pasted files, in order. */
  let attached: File[] = [];
  let replyTo: MessageView | undefined;
  const setReply = (message: MessageView | undefined): void => {
    replyTo = message;
    replyBox.hidden = !message;
    if (!message) return void replyBox.replaceChildren();
    replyBox.replaceChildren(
      h('span', { class: 'muted' }, 'Replying to'),
      replyPreview({ id: message.id, sender: message.sender, content: message.content.slice(0, 200), is_deleted: message.is_deleted }),
      h('button', { type: 'button', class: 'link', 'data-testid': 'cancel-reply', 'aria-label': 'Cancel the reply', onclick: () => setReply(undefined) }, '×'),
    );
    text.focus();
  };
  let typingSentAt = 0;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;

  const stopTyping = (): void => {
    clearTimeout(idleTimer);
    if (typingSentAt !== 0) actions.typing(false);
    typingSentAt = 0;
  };
  const clearPreviews = (): void => {
    for (const url of previewUrls) URL.revokeObjectURL(url);
    previewUrls = [];
    previews.replaceChildren();
  };

  text.addEventListener('input', () => {
    if (text.value.trim() === '') return stopTyping();
    const now = Date.now();
    if (now - typingSentAt > TYPING_REPEAT_MS) {
      actions.typing(true);
      typingSentAt = now;
    }
    clearTimeout(idleTimer);
    idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  });
  text.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  const attach = (added: readonly File[]): void => {
    for (const file of added) {
      attached.push(file);
      if (file.type.startsWith('image/')) {
        const url = URL.createObjectURL(file);
        previewUrls.push(url);
        previews.append(h('img', { src: url, alt: file.name, 'data-testid': 'preview' }));
      } else {
        previews.append(h('span', { class: 'file', dir: 'auto', 'data-testid': 'preview-file' }, `📎 ${file.name} (${formatSize(file.size)})`));
      }
    }
  };
  files.addEventListener('change', () => {
    attach([...(files.files ?? [])]);
    // The list is ours now: picking the same file again fires `change` again.
    files.value = '';
  });
  form.addEventListener('dragover', (event) => {
    if (!event.dataTransfer?.types.includes('Files')) return;
    event.preventDefault();
    form.classList.add('dropping');
  });
  form.addEventListener('dragleave', () => form.classList.remove('dropping'));
  form.addEventListener('drop', (event) => {
    form.classList.remove('dropping');
    const dropped = [...(event.dataTransfer?.files ?? [])];
    if (dropped.length === 0) return;
    event.preventDefault();
    attach(dropped);
  });
  text.addEventListener('paste', (event) => {
    const pasted = [...(event.clipboardData?.files ?? [])];
    if (pasted.length === 0) return;
    // A pasted image is attached, not turned into text.
    event.preventDefault();
    attach(pasted);
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const content = text.value.trim();
    const picked = attached;
    if (content === '' && picked.length === 0) return;
    const answering = replyTo?.id;
    stopTyping();
    text.value = '';
    attached = [];
    clearPreviews();
    setReply(undefined);
    // The box is free at once; a refused send puts its text back if nothing new was typed.
    actions.send(content, picked, answering).catch(() => {
      if (text.value === '') text.value = content;
    });
  });
  return Object.assign(form, { setReply });
}
