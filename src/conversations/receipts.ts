import type { Bus } from '../bus/bus.js';
import type { ReadUpdatedEvent } from '../contract/events.js';
import type { AuthUser } from '../domain/auth-user.js';
import type { Logger } from '../domain/logger.js';
import { conversationChannel } from '../redis/names.js';

/** A member's receipts go out at most this often per conversation (API.md: one per second). */
export const RECEIPT_INTERVAL_MS = 1_000;

/**
 * Receipts ride the conversation channel without a seq, as typing does: `receipt\n<json>`.
 * Rooms hand them to every socket of the conversation, the reader's own ones included (the
 * reader's other devices learn the marker moved; the socket that sent a `read` frame hears
 * its answer).
 */
export const RECEIPT_PREFIX = 'receipt\n';
export const encodeReceipt = (event: ReadUpdatedEvent): string => `${RECEIPT_PREFIX}${JSON.stringify(event)}`;

interface Slot {
  /** The receipt waiting for the end of the interval (the latest marker wins). */
  pending: ReadUpdatedEvent | undefined;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * A trailing throttle per (conversation, member): the first receipt goes out at once, later
 * ones within the interval wait for its end, and only the latest of them is sent then. So
 * the others see the newest marker at most a second late, and a reader scrolling through a
 * thousand messages costs one receipt a second. The throttle is per replica: a member who
 * reads through two replicas within one second may send one receipt from each (markers only
 * move forward, so a client keeps the larger).
 */
export class ReceiptThrottle {
  private readonly slots = new Map<string, Slot>();
  private closed = false;

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
  ) {}

  offer(conversationId: number, user: AuthUser, lastReadSeq: number): void {
    if (this.closed) return;
    const event: ReadUpdatedEvent = {
      type: 'read.updated',
      conversation_id: conversationId,
      user: user.username,
      user_id: user.id,
      last_read_seq: lastReadSeq,
    };
    const key = `${conversationId}:${user.id}`;
    const slot = this.slots.get(key);
    if (slot) {
      if (!slot.pending || slot.pending.last_read_seq < lastReadSeq) slot.pending = event;
      return;
    }
    this.send(key, event);
  }

  /** Drops what waits: receipts are live only, nothing is lost that a client needs later. */
  close(): void {
    this.closed = true;
    for (const slot of this.slots.values()) clearTimeout(slot.timer);
    this.slots.clear();
  }

  private send(key: string, event: ReadUpdatedEvent): void {
    this.bus
      .publish(conversationChannel(event.conversation_id), encodeReceipt(event))
      .catch((error: unknown) => this.logger.warn({ err: error, conversationId: event.conversation_id }, 'read receipt not published'));
    const timer = setTimeout(() => {
      const slot = this.slots.get(key);
      this.slots.delete(key);
      if (slot?.pending && !this.closed) this.send(key, slot.pending);
    }, RECEIPT_INTERVAL_MS);
    timer.unref();
    this.slots.set(key, { pending: undefined, timer });
  }
}
