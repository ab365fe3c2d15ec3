import { FATAL_CLOSE_CODES } from './generated/socket-codes.js';
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import { Emitter } from './emitter.js';

/** `connecting`: a handshake is under way; `waiting`: backing off before the next one; `closed`: for good. */
export type SocketState = 'connecting' | 'open' | 'waiting' | 'closed';

export type WebSocketConstructor = new (url: string) => WebSocket;

export interface ReconnectOptions {
  backoff?: Partial<BackoffOptions>;
  /** Where there is no global `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** A connection that stayed open this long resets the backoff; a flapping one keeps backing off. */
  stableMs?: number;
}

export interface ClosedInfo {
  code: number;
  reason: string;
}

interface Events {
  state: SocketState;
  open: undefined;
  message: string;
  /** The socket stopped for good: `close()` or a close code that retrying cannot fix. */
  closed: ClosedInfo;
  /** A connection closed that the socket will replace (it reconnects after this). */
  dropped: ClosedInfo;
}

const CLIENT_CLOSED = 1000;
/** Ours, when the client drops a connection to open a fresh one (a sequence gap). */
const CLIENT_RESTART = 4000;

/** A refusal while computing the URL (a ticket request answered 401): the socket ends as if closed with 4401. */
const UNAUTHORIZED = 4401;

/**
 * A WebSocket that comes back by itself: after any close it did not ask for, it waits a
 * jittered, exponentially growing delay and connects again, to a URL computed anew each time
 * (so it can carry the resume point and a fresh single-use ticket). A URL that cannot be
 * computed (no answer) counts as a failed attempt; one refused with status 401 ends the
 * socket with 4401, and one that fails with a `closeCode` ends it with that code.
 */
export class ReconnectingSocket extends Emitter<Events> {
  private socket: WebSocket | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private attempt = 0;
  /** Counts connects, so a URL that arrives after a newer connect (or a close) is dropped. */
  private attempts = 0;
  private openedAt = 0;
  private current: SocketState = 'connecting';
  private readonly backoff: BackoffOptions;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly stableMs: number;

  constructor(
    private readonly url: () => string | Promise<string>,
    options: ReconnectOptions = {},
  ) {
    super();
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    this.stableMs = options.stableMs ?? 5_000;
  }

  get state(): SocketState {
    return this.current;
  }

  /** Begins connecting; call once listeners are attached. */
  start(): void {
    this.connect();
  }

  /** Sends when open; false (nothing sent) otherwise. */
  send(text: string): boolean {
    if (this.current !== 'open' || !this.socket) return false;
    this.socket.send(text);
    return true;
  }

  /** Drops the current connection, if any, and connects again at once (no backoff). */
  reconnectNow(): void {
    if (this.current === 'closed') return;
    this.drop(CLIENT_RESTART, 'reconnecting');
    this.connect();
  }

  close(): void {
    if (this.current === 'closed') return;
    this.attempts += 1;
    this.drop(CLIENT_CLOSED, 'client closed');
    this.finish({ code: CLIENT_CLOSED, reason: 'client closed' });
  }

  /** Cancels a pending retry and closes the current connection; its events are ignored from now on. */
  private drop(code: number, reason: string): void {
    clearTimeout(this.timer);
    const old = this.socket;
    this.socket = undefined;
    // CONNECTING (0) or OPEN (1).
    if (old && old.readyState <= 1) old.close(code, reason);
  }

  private connect(): void {
    this.setState('connecting');
    const attempt = ++this.attempts;
    Promise.resolve()
      .then(() => this.url())
      .then(
        (url) => {
          // Closed or restarted while the URL was being made: this attempt is void.
          if (attempt === this.attempts && this.current === 'connecting') this.open(url);
        },
        (error: unknown) => {
          if (attempt !== this.attempts || this.current !== 'connecting') return;
          const failure = error as { statusCode?: unknown; closeCode?: unknown; message?: unknown } | null;
          if (failure?.statusCode === 401) this.finish({ code: UNAUTHORIZED, reason: 'unauthorized' });
          // The URL's maker says retrying cannot help: the socket ends as if closed with that code.
          else if (typeof failure?.closeCode === 'number') this.finish({ code: failure.closeCode, reason: String(failure.message ?? '') });
          else this.retryLater();
        },
      );
  }

  private open(url: string): void {
    let socket: WebSocket;
    try {
      socket = new this.WebSocketImpl(url);
    } catch {
      // A malformed URL is not a network blip, but the caller chose it: treat it like a failed attempt.
      this.retryLater();
      return;
    }
    this.socket = socket;
    socket.addEventListener('open', () => {
      if (this.socket !== socket) return;
      this.openedAt = Date.now();
      this.setState('open');
      this.emit('open', undefined);
    });
    socket.addEventListener('message', (event: MessageEvent) => {
      if (this.socket !== socket || typeof event.data !== 'string') return;
      this.emit('message', event.data);
    });
    socket.addEventListener('close', (event: CloseEvent) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      if (FATAL_CLOSE_CODES.includes(event.code)) {
        this.finish({ code: event.code, reason: event.reason });
        return;
      }
      if (this.openedAt !== 0 && Date.now() - this.openedAt >= this.stableMs) this.attempt = 0;
      this.openedAt = 0;
      this.emit('dropped', { code: event.code, reason: event.reason });
      this.retryLater();
    });
  }

  private retryLater(): void {
    const delay = backoffDelay(this.attempt, this.backoff);
    this.attempt += 1;
    this.setState('waiting');
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private finish(info: ClosedInfo): void {
    this.setState('closed');
    this.emit('closed', info);
  }

  private setState(state: SocketState): void {
    if (state === this.current) return;
    this.current = state;
    this.emit('state', state);
  }
}

/** `http(s)://host` → `ws(s)://host`. */
export const webSocketBase = (baseUrl: string): string => baseUrl.replace(/\/+$/, '').replace(/^http/, 'ws');
