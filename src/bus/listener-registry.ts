import type { BusListener, BusLogger } from './bus.js';

/**
 * One `subscribe()` call's hold on a channel. A distinct object per call, so the same function
 * attached twice counts twice, and detaching one of them leaves the other in place.
 */
export interface Attachment {
  readonly channel: string;
  readonly listener: BusListener;
  /** Removes the listener; idempotent: true only for the call that removed it. */
  detach(): boolean;
  /** False once `detach` has run. */
  isAttached(): boolean;
}

/**
 * The local half of every bus: which listeners each channel has, and delivery to them.
 *
 * Guarantees:
 * - A channel is listed (`has`, `channels`) exactly while at least one attachment is on it.
 * - `deliver` hands the payload to each listener of a snapshot at most once, in attach order,
 *   skipping any detached since the snapshot was taken, including by an earlier listener in
 *   the same delivery.
 * - A listener that throws does not stop the others: its error goes to the logger, or, without
 *   one, is rethrown asynchronously once the delivery is over (as an EventEmitter would, but
 *   without cutting the other listeners off).
 */
export interface ListenerRegistry {
  attach(channel: string, listener: BusListener): Attachment;
  has(channel: string): boolean;
  channels(): string[];
  /** The listeners on `channel` now, for a delivery that happens later (empty when none). */
  snapshot(channel: string): readonly Attachment[];
  /** Delivers `payload` to the still-attached listeners of a snapshot of one channel. */
  deliver(targets: readonly Attachment[], payload: string): void;
  /** `deliver` to a snapshot taken now; false when the channel has no listener. */
  dispatch(channel: string, payload: string): boolean;
  /**
   * Forgets every channel (a closing bus). Attachments keep their own state: a snapshot taken
   * before still reaches the listeners that have not detached, and a later `detach` is harmless.
   */
  clear(): void;
}

export interface ListenerRegistryOptions {
  /** Where a throwing listener is reported; without one the error is rethrown asynchronously. */
  logger?: BusLogger | undefined;
  /** Schedules that rethrow (default `queueMicrotask`); tests pass their own queue. */
  defer?: (task: () => void) => void;
}

export function createListenerRegistry(options: ListenerRegistryOptions = {}): ListenerRegistry {
  const { logger } = options;
  const defer = options.defer ?? queueMicrotask;
  const byChannel = new Map<string, Set<Attachment>>();

  const report = (err: unknown, channel: string): void => {
    if (logger) logger.warn({ err, channel }, 'bus listener threw');
    else defer(() => {
      throw err;
    });
  };

  const deliver = (targets: readonly Attachment[], payload: string): void => {
    for (const attachment of targets) {
      if (!attachment.isAttached()) continue;
      try {
        attachment.listener(payload);
      } catch (err) {
        report(err, attachment.channel);
      }
    }
  };

  const snapshot = (channel: string): readonly Attachment[] => [...(byChannel.get(channel) ?? [])];

  return {
    attach(channel, listener) {
      let set = byChannel.get(channel);
      if (!set) {
        set = new Set();
        byChannel.set(channel, set);
      }
      // The attachment remembers its own set: after `clear` (or once the channel was dropped
      // and attached again) it must neither count in the new set nor remove it.
      const own = set;
      const attachment: Attachment = {
        channel,
        listener,
        detach() {
          if (!own.delete(attachment)) return false;
          if (own.size === 0 && byChannel.get(channel) === own) byChannel.delete(channel);
          return true;
        },
        isAttached: () => own.has(attachment),
      };
      own.add(attachment);
      return attachment;
    },

    has: (channel) => byChannel.has(channel),
    channels: () => [...byChannel.keys()],
    snapshot,
    deliver,

    dispatch(channel, payload) {
      if (!byChannel.has(channel)) return false;
      deliver(snapshot(channel), payload);
      return true;
    },

    clear() {
      byChannel.clear();
    },
  };
}
