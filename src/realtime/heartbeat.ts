import type { Scheduler } from './scheduler.js';

/** What the heartbeat needs of a socket (ws's WebSocket is one). */
export interface HeartbeatSocket {
  ping(): void;
  terminate(): void;
  on(event: 'pong' | 'close', listener: () => void): unknown;
}

/** Longest pause between two ticks: each tick pings one bucket, so a replica's pings come in small groups. */
export const HEARTBEAT_TICK_MS = 1000;
/** At most this many buckets, however long the interval: a watch looks at every bucket once. */
export const MAX_HEARTBEAT_BUCKETS = 60;

export interface Heartbeat {
  watch(socket: HeartbeatSocket): void;
  stop(): void;
}

/** setTimeout that does not keep the process alive (the heartbeat alone never should). */
const backgroundScheduler: Scheduler = {
  schedule(ms, callback) {
    const timer = setTimeout(callback, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/**
 * Pings every socket once per interval; one that has not answered its previous ping is dead
 * (a vanished peer, a half-open TCP connection) and is terminated, freeing its resources.
 *
 * The sockets are spread over buckets (a new one joins the emptiest) and the buckets are
 * ticked in turn, one every `intervalMs / buckets`: a replica with many sockets pings a
 * bucket's share at a time instead of all of them in one synchronous loop, which would stall
 * its event loop (and every delivery behind it) once per interval.
 */
export function createHeartbeat(intervalMs: number, scheduler: Scheduler = backgroundScheduler): Heartbeat {
  const count = Math.max(1, Math.min(MAX_HEARTBEAT_BUCKETS, Math.floor(intervalMs / HEARTBEAT_TICK_MS)));
  /** Per bucket: each socket, and whether it answered since its last ping. */
  const buckets = Array.from({ length: count }, () => new Map<HeartbeatSocket, boolean>());
  const tickMs = intervalMs / count;
  let next = 0;
  let cancel: (() => void) | undefined;
  let stopped = false;

  const tick = () => {
    if (stopped) return;
    const bucket = buckets[next]!;
    next = (next + 1) % count;
    for (const [socket, answered] of bucket) {
      if (!answered) {
        socket.terminate();
        continue;
      }
      bucket.set(socket, false);
      socket.ping();
    }
    cancel = scheduler.schedule(tickMs, tick);
  };
  cancel = scheduler.schedule(tickMs, tick);

  return {
    watch(socket) {
      let bucket = buckets[0]!;
      for (const candidate of buckets) if (candidate.size < bucket.size) bucket = candidate;
      bucket.set(socket, true);
      socket.on('pong', () => bucket.has(socket) && bucket.set(socket, true));
      socket.on('close', () => bucket.delete(socket));
    },
    stop() {
      stopped = true;
      cancel?.();
      cancel = undefined;
    },
  };
}
