import type { PresenceView } from '@chat-service/client';
import { h } from './dom.js';

/** What the dots show of someone's presence: their entry (if known), and whether it is current. */
export interface PresenceLookup {
  get(userId: number): PresenceView | undefined;
  /** False while the conversation's socket is down: the dots are dimmed, they may be old. */
  readonly fresh: boolean;
}

/** A dot and a short line ("online", "last seen 5 minutes ago") for one person, updated in place. */
export interface PresenceBadge {
  readonly dot: HTMLElement;
  readonly text: HTMLElement;
  show(entry: PresenceView | undefined, fresh: boolean, now?: number): void;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const longAgo = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
/** Under this, "just now": the service marks someone offline a couple of seconds after their last tab closed. */
const JUST_NOW_SECONDS = 45;
const UNITS: Array<[unit: Intl.RelativeTimeFormatUnit, seconds: number, below: number]> = [
  ['minute', 60, 60 * 60],
  ['hour', 60 * 60, 24 * 60 * 60],
  ['day', 24 * 60 * 60, 7 * 24 * 60 * 60],
];

/** "last seen just now", "last seen 5 minutes ago", "last seen yesterday", "last seen 3 Mar 2025"; "not seen yet" for null. */
export function lastSeenText(iso: string | null, now = Date.now()): string {
  if (iso === null) return 'not seen yet';
  const at = Date.parse(iso);
  const seconds = Math.max(0, (now - at) / 1000);
  if (seconds < JUST_NOW_SECONDS) return 'last seen just now';
  for (const [unit, size, below] of UNITS) {
    if (seconds < below) return `last seen ${relative.format(-Math.max(1, Math.round(seconds / size)), unit)}`;
  }
  return `last seen ${longAgo.format(at)}`;
}

/** "online", a "last seen" line, or nothing while unknown. */
export function presenceText(entry: PresenceView | undefined, now = Date.now()): string {
  if (!entry) return '';
  return entry.status === 'online' ? 'online' : lastSeenText(entry.last_seen_at, now);
}

export function presenceBadge(): PresenceBadge {
  const dot = h('span', { class: 'presence-dot', 'data-testid': 'presence-dot', 'data-status': 'unknown', role: 'img', 'aria-label': 'status unknown' });
  const text = h('span', { class: 'presence-text', 'data-testid': 'presence-text' });
  return {
    dot,
    text,
    show(entry, fresh, now = Date.now()) {
      const line = presenceText(entry, now);
      dot.dataset.status = entry?.status ?? 'unknown';
      dot.classList.toggle('stale', !fresh);
      dot.setAttribute('aria-label', entry ? entry.status : 'status unknown');
      dot.title = fresh ? line : `${line} (reconnecting…)`;
      text.textContent = line;
      text.dataset.status = entry?.status ?? 'unknown';
      if (entry?.last_seen_at) text.dataset.lastSeenAt = entry.last_seen_at;
      else delete text.dataset.lastSeenAt;
    },
  };
}
