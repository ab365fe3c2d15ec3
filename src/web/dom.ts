/**
 * Element construction without innerHTML: every piece of user text goes in through
 * `textContent`, so nothing a user writes can become markup.
 */
type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | boolean | number | undefined | ((event: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attributes: Attributes = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') element.addEventListener(name.replace(/^on/, ''), value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, String(value));
  }
  element.append(...children.filter((child): child is Node | string => child !== null && child !== undefined && child !== false));
  return element;
}

export const clear = (element: Element): void => element.replaceChildren();

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** Today's times as hh:mm, older ones with their date. */
export function formatTime(iso: string): string {
  const date = new Date(iso);
  return date.toDateString() === new Date().toDateString() ? timeFormat.format(date) : dateFormat.format(date);
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A one-line, dismissable error strip at the top of `host`. */
export function showError(host: HTMLElement, error: unknown): void {
  const text = error instanceof Error ? error.message : String(error);
  host.querySelector('.error-strip')?.remove();
  const strip = h('div', { class: 'error-strip', role: 'alert', 'data-testid': 'error' }, text, h('button', { type: 'button', onclick: () => strip.remove(), 'aria-label': 'dismiss' }, '×'));
  host.prepend(strip);
}
