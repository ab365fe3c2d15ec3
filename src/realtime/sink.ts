import type { WebSocket } from 'ws';

/** Close codes of our own (4000-4999 are the application's). */
export const CloseCode = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  badRequest: 4400,
  unauthorized: 4401,
  forbidden: 4403,
  /** More sockets than MAX_SOCKETS_PER_USER: the client may retry later. */
  tooManySockets: 4429,
  internal: 1011,
  /** The client read too slowly; it reconnects and resumes with `last_seq`. */
  slowConsumer: 4008,
} as const;

/** Where a socket's outgoing events go: bounded, so a slow reader cannot grow the heap. */
export interface EventSink {
  /** False when the socket is gone or was just closed for falling behind. */
  send(data: Buffer | string): boolean;
  close(code: number, reason: string): void;
  /** Resolves once the socket's buffer has room again (for long replays). */
  drained(): Promise<void>;
}

export interface SinkOptions {
  /** Bytes queued in the socket beyond which the client counts as too slow. */
  maxBufferedBytes: number;
  onSlowConsumer(): void;
}

/** How often a replay waiting for room checks the socket's buffer again. */
const DRAIN_POLL_MS = 20;

export function socketSink(socket: WebSocket, options: SinkOptions): EventSink {
  const close = (code: number, reason: string) => {
    if (socket.readyState !== socket.OPEN && socket.readyState !== socket.CONNECTING) return;
    // Whoever decides a reader is too slow (the buffer here, a room's replay backlog), it counts.
    if (code === CloseCode.slowConsumer) options.onSlowConsumer();
    socket.close(code, reason);
  };
  return {
    send(data) {
      if (socket.readyState !== socket.OPEN) return false;
      if (socket.bufferedAmount > options.maxBufferedBytes) {
        close(CloseCode.slowConsumer, 'slow consumer: reconnect with last_seq');
        return false;
      }
      socket.send(data, { binary: false });
      return true;
    },
    close,
    async drained() {
      while (socket.readyState === socket.OPEN && socket.bufferedAmount > options.maxBufferedBytes / 2) {
        await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
      }
    },
  };
}
