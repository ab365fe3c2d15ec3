import { formatSize, h } from './dom.js';

export interface ComposerActions {
  /** Sends text (possibly empty when files are attached) and the picked files. */
  send(text: string, files: File[]): Promise<void>;
  typing(isTyping: boolean): void;
}

/** After this long without a keystroke the user no longer counts as typing. */
const TYPING_IDLE_MS = 3_000;
/** "Still typing" is repeated at most this often while keys keep coming. */
const TYPING_REPEAT_MS = 2_000;

/** The message box: text, file picker with image previews, send. */
export function composer(actions: ComposerActions): HTMLFormElement {
  const text = h('textarea', { rows: 2, dir: 'auto', placeholder: 'Write a message…', 'data-testid': 'composer' });
  const files = h('input', { type: 'file', multiple: true, 'data-testid': 'file-input' });
  const previews = h('div', { class: 'previews', 'data-testid': 'previews' });
  const send = h('button', { type: 'submit', 'data-testid': 'send' }, 'Send');
  const form: HTMLFormElement = h(
    'form',
    { class: 'composer' },
    previews,
    h('div', { class: 'row' }, text, h('label', { class: 'attach', title: 'attach files' }, 'Attach', files), send),
  );
  let previewUrls: string[] = [];
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
  files.addEventListener('change', () => {
    clearPreviews();
    for (const file of files.files ?? []) {
      if (file.type.startsWith('image/')) {
        const url = URL.createObjectURL(file);
        previewUrls.push(url);
        previews.append(h('img', { src: url, alt: file.name, 'data-testid': 'preview' }));
      } else {
        previews.append(h('span', { class: 'file', dir: 'auto' }, `📎 ${file.name} (${formatSize(file.size)})`));
      }
    }
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const content = text.value.trim();
    const picked = [...(files.files ?? [])];
    if (content === '' && picked.length === 0) return;
    stopTyping();
    text.value = '';
    files.value = '';
    clearPreviews();
    // The box is free at once; a refused send puts its text back if nothing new was typed.
    actions.send(content, picked).catch(() => {
      if (text.value === '') text.value = content;
    });
  });
  return form;
}
