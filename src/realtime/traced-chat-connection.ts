import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { ChatConnection } from './chat-connection.js';
import type { ClientFrame } from './protocol.js';

/** The span of one frame being handled, as the socket code sees it. */
export interface FrameSpan {
  /** The frame's type, once parsed (`chat_message`, `edit_message`, …): the span's name. */
  named(type: string): void;
  /** The frame failed (answered with an `error` event). */
  failed(error: unknown): void;
}

/**
 * What tracing (src/tracing/) provides to the sockets: runs the handling of one frame inside
 * a span that is the active context throughout, so the statements, Redis commands and
 * publishes it causes are its children.
 */
export interface FrameTracer {
  frame(socket: 'chat', handle: (span: FrameSpan) => Promise<void>): Promise<void>;
}

/**
 * A chat socket whose frames are traced. A subclass, used only when tracing is on, so that a
 * socket without tracing runs the plain `ChatConnection` code and pays nothing for it.
 * Frames are handled one at a time, so one field holds the current frame's span.
 */
export class TracedChatConnection extends ChatConnection {
  private span: FrameSpan | undefined;

  constructor(
    app: FastifyInstance,
    socket: WebSocket,
    request: FastifyRequest,
    private readonly tracer: FrameTracer,
  ) {
    super(app, socket, request);
  }

  protected override handle(text: string): Promise<void> {
    return this.tracer.frame('chat', async (span) => {
      this.span = span;
      try {
        await super.handle(text);
      } finally {
        this.span = undefined;
      }
    });
  }

  protected override dispatch(frame: ClientFrame): Promise<void> {
    this.span?.named(frame.type);
    return super.dispatch(frame);
  }

  protected override report(error: unknown, frame: ClientFrame | undefined): void {
    // A send's failure arrives after its frame was handled: it then belongs to no frame span.
    this.span?.failed(error);
    super.report(error, frame);
  }
}
