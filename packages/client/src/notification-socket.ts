import type { NotificationReadEvent, NotificationServerEvent, NotificationView } from './generated/contract.js';
import { Emitter } from './emitter.js';
import { type ClosedInfo, ReconnectingSocket, type ReconnectOptions, type SocketState, webSocketBase } from './reconnecting-socket.js';

export interface NotificationSocketOptions extends ReconnectOptions {
  baseUrl: string;
  /** A fresh single-use ticket for every (re)connect; a 401 rejection ends the socket (4401). */
  ticket: () => Promise<string>;
}

interface NotificationSocketEvents {
  notification: NotificationView;
  /** Another device of the same user marked one (`id`) or all (`all`) read. */
  read: NotificationReadEvent;
  /**
   * Connected again after a break. Notifications carry no `seq`: what changed meanwhile is
   * read with `listNotifications()`.
   */
  resync: undefined;
  state: SocketState;
  closed: ClosedInfo;
}

/** `/ws/notifications/`, reconnecting by itself. */
export class NotificationSocket extends Emitter<NotificationSocketEvents> {
  private readonly socket: ReconnectingSocket;
  private opened = false;

  constructor(options: NotificationSocketOptions) {
    super();
    const url = `${webSocketBase(options.baseUrl)}/ws/notifications/`;
    this.socket = new ReconnectingSocket(async () => {
      const ticket = await options.ticket();
      return ticket ? `${url}?ticket=${encodeURIComponent(ticket)}` : url;
    }, options);
    this.socket.on('state', (state) => this.emit('state', state));
    this.socket.on('closed', (info) => this.emit('closed', info));
    this.socket.on('open', () => {
      if (this.opened) this.emit('resync', undefined);
      this.opened = true;
    });
    this.socket.on('message', (text) => {
      let event: NotificationServerEvent;
      try {
        event = JSON.parse(text) as NotificationServerEvent;
      } catch {
        return;
      }
      if (event.type === 'notification') this.emit('notification', event.message);
      else if (event.type === 'notification.read') this.emit('read', event);
    });
    this.socket.start();
  }

  get state(): SocketState {
    return this.socket.state;
  }

  reconnectNow(): void {
    this.socket.reconnectNow();
  }

  close(): void {
    this.socket.close();
  }
}
