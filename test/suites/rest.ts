/**
 * The REST contract of API.md (accounts, users, conversations, messages), run against one
 * database kind. One database and one app per kind, shared by the feature suites beside this
 * file (rest-*.ts); every request goes through `app.inject` and every response is recorded, so
 * the last check can see that no error left without the one error shape, and that nothing
 * answered 500.
 */
import { STATUS_CODES } from 'node:http';
import type { Test } from 'tap';
import type { DatabaseKind } from '../helpers/app.js';
import { restContext, STACK_TRACE } from '../helpers/rest-context.js';
import { restAuthSuite } from './rest-auth.js';
import { restConversationsSuite } from './rest-conversations.js';
import { restErrorsSuite } from './rest-errors.js';
import { restHistorySuite } from './rest-history.js';
import { restMembersSuite } from './rest-members.js';
import { restInboxSuite } from './rest-inbox.js';
import { restMentionsSuite } from './rest-mentions.js';
import { restMessagesSuite } from './rest-messages.js';
import { restPresenceSuite } from './rest-presence.js';
import { restReadSuite } from './rest-read.js';
import { restRichSuite } from './rest-rich.js';
import { restRoutesSuite } from './rest-routes.js';
import { restSeqSuite } from './rest-seq.js';
import { restUsersSuite } from './rest-users.js';

export async function restSuite(t: Test, kind: DatabaseKind): Promise<void> {
  const context = await restContext(t, kind);
  const { seen } = context;

  // Subtests run in this order; the response check must come last, after every request.
  restAuthSuite(t, context);
  restUsersSuite(t, context);
  restConversationsSuite(t, context);
  restMembersSuite(t, context);
  restInboxSuite(t, context);
  restReadSuite(t, context);
  restMessagesSuite(t, context);
  restHistorySuite(t, context);
  restRichSuite(t, context);
  restMentionsSuite(t, context);
  restPresenceSuite(t, context);
  restSeqSuite(t, context);
  restRoutesSuite(t, context);
  restErrorsSuite(t, context);

  // ---------------------------------------------------------------------------------------
  t.test('every response: no 500, one error shape, no stack trace', async (t) => {
    t.ok(seen.length > 300, `${seen.length} responses checked`);
    t.same(seen.filter((r) => r.status >= 500 && r.status !== 503).map((r) => `${r.label} ${r.status}`), [], 'no 5xx but 503');
    const misshapen = seen.filter((r) => {
      // /readyz reports its checks in its own shape, 503 included.
      if (r.status < 400 || r.label.endsWith(' /readyz')) return false;
      const body = r.json as { statusCode?: unknown; error?: unknown; message?: unknown } | undefined;
      return !body || body.statusCode !== r.status || body.error !== STATUS_CODES[r.status] || typeof body.message !== 'string';
    });
    t.same(misshapen.map((r) => `${r.label} ${r.status} ${r.body.slice(0, 100)}`), [], 'every error has {statusCode, error, message}');
    t.same(seen.filter((r) => STACK_TRACE.test(r.body)).map((r) => r.label), [], 'no stack traces');
  });
}
