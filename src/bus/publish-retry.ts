import type { Bus, BusLogger } from './bus.js';

/** Failed publishes kept for a retry at most; past it the oldest are dropped (and counted). */
export const MAX_RETRY_QUEUE = 10_000;
/** The first retry waits this long, each failed round twice as long, up to `RETRY_MAX_MS`. */
export const RETRY_FIRST_MS = 100;
export const RETRY_MAX_MS = 2_000;
/** After a publish failed, `troubled()` stays true this long (rooms check their position meanwhile). */
export const TROUBLE_WINDOW_MS = 30_000;

export type PublishKind = 'conversation' | 'notification';

/** Timers behind a seam (tests drive them); the default one never keeps the process alive. */
export interface RetryTimers {
  schedule(ms: number, callback: () => void): () => void;
  now(): number;
}

const realTimers: RetryTimers = {
  schedule(ms, callback) {
    const timer = setTimeout(callback, ms);
    // A retry owed must not keep a closing process alive: shutdown flushes explicitly.
    timer.unref();
    return () => clearTimeout(timer);
  },
  now: () => Date.now(),
};

export interface PublishRetryOptions {
  bus: Pick<Bus, 'publish'>;
  logger: BusLogger;
  timers?: RetryTimers;
  maxQueued?: number;
  /** Counts a failed attempt (first or retry). */
  onFailure?(kind: PublishKind): void;
  /** Counts a payload dropped from a full queue: its event is then repaired by the rooms' position checks. */
  onDropped?(kind: PublishKind): void;
}

/**
 * Publishes durable events **at least once**: a publish the bus refuses or loses (the
 * publisher connection dropped, a command timed out) is kept in a bounded queue and retried
 * with backoff until it goes through. A retry may repeat a payload the broker did take (a
 * timeout after the send): conversation events carry their `seq` and rooms drop repeats;
 * notification pushes carry their row, which the client upserts. Retried payloads arrive
 * after later ones, so per-publisher order does not hold for them (rooms re-order by seq).
 */
export interface RetryingPublisher {
  /** Resolves once the first attempt has settled (stored for a retry if it failed); never rejects. */
  publish(channel: string, payload: string, kind: PublishKind): Promise<void>;
  /** True while payloads wait for a retry, and for `TROUBLE_WINDOW_MS` after the last failure. */
  troubled(): boolean;
  /** Payloads waiting for a retry. */
  queued(): number;
  /** Resolves once every first attempt made so far has settled and one retry of the queue ran (shutdown). */
  flush(): Promise<void>;
  /** Stops retrying; what is still queued is dropped. */
  close(): void;
}

interface Queued {
  channel: string;
  payload: string;
  kind: PublishKind;
}

export function createPublishRetry(options: PublishRetryOptions): RetryingPublisher {
  const { bus, logger } = options;
  const timers = options.timers ?? realTimers;
  const max = options.maxQueued ?? MAX_RETRY_QUEUE;
  let queue: Queued[] = [];
  const attempts = new Set<Promise<void>>();
  let cancel: (() => void) | undefined;
  let delayMs = RETRY_FIRST_MS;
  let lastFailureAt = Number.NEGATIVE_INFINITY;
  let retrying: Promise<void> | undefined;
  let closed = false;

  const enqueue = (items: Queued[]): void => {
    queue.push(...items);
    if (queue.length > max) {
      const dropped = queue.splice(0, queue.length - max);
      for (const item of dropped) options.onDropped?.(item.kind);
      logger.warn({ dropped: dropped.length }, 'publish retry queue full: oldest payloads dropped');
    }
  };

  const failed = (kind: PublishKind): void => {
    lastFailureAt = timers.now();
    options.onFailure?.(kind);
  };

  const scheduleRetry = (): void => {
    if (closed || cancel || queue.length === 0) return;
    cancel = timers.schedule(delayMs, () => {
      cancel = undefined;
      void retry();
    });
  };

  /** One round: every queued payload once; what fails again goes back, in order, before newer failures. */
  const retry = (): Promise<void> => {
    retrying ??= (async () => {
      const round = queue;
      queue = [];
      const results = await Promise.allSettled(round.map((item) => bus.publish(item.channel, item.payload)));
      const again = round.filter((_, index) => results[index]!.status === 'rejected');
      if (again.length > 0) {
        failed(again[0]!.kind);
        queue = [...again, ...queue];
        if (queue.length > max) enqueue([]);
        delayMs = Math.min(delayMs * 2, RETRY_MAX_MS);
      } else {
        if (round.length > 0) logger.info({ count: round.length }, 'failed publishes repaired');
        delayMs = RETRY_FIRST_MS;
      }
    })().finally(() => {
      retrying = undefined;
      scheduleRetry();
    });
    return retrying;
  };

  return {
    publish(channel, payload, kind) {
      if (closed) return Promise.resolve();
      const attempt: Promise<void> = bus
        .publish(channel, payload)
        .catch((error: unknown) => {
          failed(kind);
          logger.warn({ err: error, channel, kind }, 'publish failed; queued for a retry');
          enqueue([{ channel, payload, kind }]);
          scheduleRetry();
        })
        .finally(() => attempts.delete(attempt));
      attempts.add(attempt);
      return attempt;
    },
    troubled: () => queue.length > 0 || timers.now() - lastFailureAt < TROUBLE_WINDOW_MS,
    queued: () => queue.length,
    async flush() {
      await Promise.all(attempts);
      await retrying;
      if (queue.length > 0) {
        cancel?.();
        cancel = undefined;
        await retry();
      }
    },
    close() {
      closed = true;
      cancel?.();
      cancel = undefined;
      queue = [];
    },
  };
}
