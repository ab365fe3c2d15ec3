/** At most one read marker move per this long (the service sends at most one receipt per second). */
const READ_INTERVAL_MS = 1_000;
/** A message counts as seen once this share of it (or of the list's height, for a tall one) is on screen. */
const SEEN_SHARE = 0.6;

/**
 * Moves the read marker as messages are seen: only while the tab is visible and only for
 * messages actually on screen in the list, forward only, and throttled (the newest wish is
 * sent when the interval is over).
 */
export class ReadTracker {
  private readonly onScreen = new Map<Element, number>();
  private readonly observer: IntersectionObserver;
  private wanted = 0;
  private sent = 0;
  private sentAt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onVisibility = (): void => this.check();

  constructor(
    root: HTMLElement,
    private readonly read: (seq: number) => void,
  ) {
    this.observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          const seq = Number((entry.target as HTMLElement).dataset.seq);
          const rootHeight = entry.rootBounds?.height ?? 0;
          const seen = entry.isIntersecting && (entry.intersectionRatio >= SEEN_SHARE || (rootHeight > 0 && entry.intersectionRect.height >= rootHeight * SEEN_SHARE));
          if (seen && seq > 0) this.onScreen.set(entry.target, seq);
          else this.onScreen.delete(entry.target);
        }
        this.check();
      },
      { root, threshold: [0, SEEN_SHARE, 1] },
    );
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  /** What the marker already is: nothing at or below it is sent. */
  set floor(seq: number) {
    this.sent = Math.max(this.sent, seq);
    this.wanted = Math.max(this.wanted, seq);
  }

  watch(element: HTMLElement, seq: number): void {
    element.dataset.seq = String(seq);
    this.observer.observe(element);
  }

  /** Looks again (the tab became visible, a message scrolled in). */
  check(): void {
    if (document.visibilityState !== 'visible') return;
    let newest = 0;
    for (const seq of this.onScreen.values()) newest = Math.max(newest, seq);
    if (newest <= this.wanted) return;
    this.wanted = newest;
    const wait = this.sentAt + READ_INTERVAL_MS - Date.now();
    if (wait <= 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), wait);
  }

  destroy(): void {
    clearTimeout(this.timer);
    this.observer.disconnect();
    document.removeEventListener('visibilitychange', this.onVisibility);
  }

  private flush(): void {
    this.timer = undefined;
    if (this.wanted <= this.sent) return;
    this.sent = this.wanted;
    this.sentAt = Date.now();
    this.read(this.wanted);
  }
}
