/** The client library against a rate-limited service of its own: the REST 429 as an `ApiError` with `retryAfter`, the socket's refusal as a `SendError`. */
import type { Test } from 'tap';
import { ApiError, SendError } from '@chat-service/client';
import { bounded, chatEventValidator, invalidFrames } from '../helpers/client-harness.js';
import { newUser, openChat, startServer } from '../helpers/client-service.js';

export function clientRateLimitSuite(t: Test): void {
  t.test('a rate-limited service (MESSAGE_RATE_LIMIT=2): 429 with retryAfter, SendError rate_limited', async (t) => {
    const { base } = await startServer(t, { MESSAGE_RATE_LIMIT: '2' });
    const alice = await newUser(base);
    const bob = await newUser(base);
    const conversation = await alice.client.createConversation([bob.id]);

    // A fixed one-minute window: within two windows at most 4 sends pass, so the 5th is refused at the latest.
    let accepted = 0;
    let limited: unknown;
    for (let i = 0; i < 5 && !limited; i++) {
      try {
        await alice.client.sendMessage(conversation.id, `rest ${i}`);
        accepted++;
      } catch (error) {
        limited = error;
      }
    }
    t.ok(accepted >= 2, `${accepted} sends accepted first`);
    t.ok(limited instanceof ApiError, 'then an ApiError');
    t.match(limited, { statusCode: 429, error: 'Too Many Requests', message: String }, '429');
    const retryAfter = (limited as ApiError).retryAfter;
    t.ok(Number.isInteger(retryAfter) && retryAfter! >= 0 && retryAfter! <= 60, `retryAfter from Retry-After, in seconds (${retryAfter})`);

    const B = openChat(t, bob, conversation.id, 0, 'bob');
    let refused: unknown;
    let resolved = 0;
    for (let i = 0; i < 5 && !refused; i++) {
      try {
        await bounded(B.socket.send(`socket ${i}`, `bob-${i}`), `send ${i}`);
        resolved++;
      } catch (error) {
        refused = error;
      }
    }
    t.ok(resolved >= 2, `${resolved} socket sends resolved first`);
    t.ok(refused instanceof SendError, 'then a SendError');
    t.match(refused, { event: { type: 'error', code: 'rate_limited', client_id: `bob-${resolved}` } }, "the error event's code and client_id");
    t.ok(Number.isInteger((refused as SendError).event.retry_after), 'with retry_after');
    t.equal(B.socket.state, 'open', 'the socket stays open');
    t.same(invalidFrames(bob.wire.frames, chatEventValidator), [], 'every frame validates');
  });
}
