import type { FrameTracer } from '../realtime/traced-chat-connection.js';
import type { Otel } from './sdk.js';

/**
 * A span per chat frame, named by its type (`chat_message`, `edit_message`, `delete_message`,
 * `typing`), each the root of its own trace. A `chat_message` span ends once the send is
 * queued; its statement and publish are children that end when the message is stored.
 */
export function frameTracer(otel: Otel): FrameTracer {
  const { api } = otel;
  return {
    frame: (socket, handle) =>
      otel.inSpan(
        `${socket} frame`,
        { kind: api.SpanKind.SERVER, attributes: { 'chat.socket': socket } },
        (span) =>
          handle({
            named: (type) => {
              span.updateName(type);
              span.setAttribute('chat.frame.type', type);
            },
            failed: (error) => otel.failed(span, error),
          }),
        api.ROOT_CONTEXT,
      ),
  };
}
