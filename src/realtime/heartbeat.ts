import type { WebSocket } from 'ws';

/**
 * Ping every socket each interval; one that has not answered the previous ping is dead (a
 * vanished peer, a half-open TCP connection) and is terminated, freeing its resources.
 */
export function createHeartbeat(intervalMs: number) {
  const alive = new Map<WebSocket, boolean>();
  const timer = setInterval(() => {
    for (const [socket, answered] of alive) {
      if (!answered) {
        socket.terminate();
        continue;
      }
      alive.set(socket, false);
      socket.ping();
    }
  }, intervalMs);
  timer.unref();
  return {
    watch(socket: WebSocket): void {
      alive.set(socket, true);
      socket.on('pong', () => alive.has(socket) && alive.set(socket, true));
      socket.on('close', () => alive.delete(socket));
    },
    stop: () => clearInterval(timer),
  };
}
