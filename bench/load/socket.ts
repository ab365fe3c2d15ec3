/** One chat socket (`/ws/chat/{id}/?token=`), speaking the contract's frames. */
import WebSocket from 'ws';

const CONNECT_TIMEOUT_MS = 15_000;

/** The part of a server event the bench reads. */
export interface ServerEvent {
  type: string;
  message?: { client_id?: unknown };
}

export interface ChatSocket {
  sendChat(text: string, clientId: string): void;
  close(): void;
  readonly open: boolean;
}

function parseEvent(data: WebSocket.RawData): ServerEvent | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString());
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { type?: unknown }).type !== 'string') return null;
  return parsed as ServerEvent;
}

/** Resolves once the socket is open (the server may still be joining it to the room). */
export function connectChat(baseUrl: string, conversationId: number, token: string, onEvent: (event: ServerEvent) => void): Promise<ChatSocket> {
  const url = `${baseUrl.replace(/^http/, 'ws')}/ws/chat/${conversationId}/?token=${encodeURIComponent(token)}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: CONNECT_TIMEOUT_MS, perMessageDeflate: false });
    const socket: ChatSocket = {
      sendChat: (text, clientId) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'chat_message', message: text, client_id: clientId }));
      },
      close: () => ws.terminate(),
      get open() {
        return ws.readyState === WebSocket.OPEN;
      },
    };
    ws.once('open', () => resolve(socket));
    ws.once('error', reject);
    ws.on('close', (code) => reject(new Error(`socket closed before open: ${code}`)));
    ws.on('message', (data) => {
      const event = parseEvent(data);
      if (event) onEvent(event);
    });
  });
}
