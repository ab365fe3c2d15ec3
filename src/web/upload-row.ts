import { type ChatClient, isAbortError } from '@chat-service/client';
import { formatSize, h } from './dom.js';

/** How long a cancelled upload's line stays. */
const CANCELLED_MS = 2_500;

/**
 * Uploads one file to message `messageId` of a conversation with a progress bar and a cancel button, shown in `host`
 * while it runs. A cancelled upload keeps nothing and resolves; a failed one rejects.
 */
export async function uploadWithProgress(client: ChatClient, host: HTMLElement, conversationId: number, messageId: number, file: File): Promise<void> {
  const controller = new AbortController();
  const bar = h('progress', { max: 1, value: 0, 'data-testid': 'upload-progress', 'aria-label': `Uploading ${file.name}` });
  const cancel = h('button', { type: 'button', class: 'link danger', 'data-testid': 'cancel-upload', 'aria-label': `Cancel uploading ${file.name}`, onclick: () => controller.abort() }, 'cancel');
  const row = h('div', { class: 'upload', 'data-testid': 'upload', 'data-filename': file.name }, h('span', { dir: 'auto' }, `${file.name} (${formatSize(file.size)})`), bar, cancel);
  host.append(row);
  try {
    await client.uploadAttachment(conversationId, messageId, file, file.name, {
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
    setTimeout(() => row.remove(), CANCELLED_MS);
  }
}
