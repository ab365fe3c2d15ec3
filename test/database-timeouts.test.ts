/**
 * PostgreSQL session limits (DATABASE_*_TIMEOUT_MS): every session carries them, and a
 * statement that waits past lock_timeout on a row another session holds ends as a 503 with
 * Retry-After, for the held conversation only, instead of hanging its request.
 */
import { sql } from 'drizzle-orm';
import t from 'tap';
import { call, createConversation, register } from './helpers/api.js';
import { buildTestApp } from './helpers/app.js';
import { freshPostgresDatabase } from './helpers/database.js';
import { holdConversationRow } from './helpers/row-lock.js';

t.test('session limits are set, and a lock wait past lock_timeout is a 503', async (t) => {
  const url = await freshPostgresDatabase(t, 'timeouts');
  const app = await buildTestApp(t, {
    env: { DATABASE_URL: url, MIGRATE_ON_START: 'true', DATABASE_LOCK_TIMEOUT_MS: '300', DATABASE_STATEMENT_TIMEOUT_MS: '4000', DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '6000' },
  });
  const [settings] = await app.database.query<Record<string, string>>(
    sql`select current_setting('statement_timeout') as statement, current_setting('lock_timeout') as lock,
                 current_setting('idle_in_transaction_session_timeout') as idle`,
  );
  t.same(settings, { statement: '4s', lock: '300ms', idle: '6s' }, 'every session carries the limits');

  const alice = await register(app);
  const bob = await register(app);
  const conversation = await createConversation(app, alice, [bob]);
  const other = await createConversation(app, alice, [bob]);
  const first = await call(app, 'POST', `/api/conversations/${conversation}/messages/`, { token: alice.token, body: { content: 'first' } });
  t.equal(first.status, 201);

  const { release, done: holding } = await holdConversationRow(t, url, conversation);

  const started = Date.now();
  const [edit, sent, elsewhere] = await Promise.all([
    call(app, 'PATCH', `/api/conversations/${conversation}/messages/${first.json.id}/`, { token: alice.token, body: { content: 'edited' } }),
    call(app, 'POST', `/api/conversations/${conversation}/messages/`, { token: alice.token, body: { content: 'held' } }),
    call(app, 'POST', `/api/conversations/${other}/messages/`, { token: alice.token, body: { content: 'elsewhere' } }),
  ]);
  t.ok(Date.now() - started < 3_000, `answered within the lock timeout, not the holder's time (${Date.now() - started} ms)`);
  t.match(edit, { status: 503, headers: { 'retry-after': /\d/ } }, 'an edit waiting for the held row: 503 with Retry-After');
  t.match(sent, { status: 503 }, 'a send waiting for the held row: 503');
  t.equal(elsewhere.status, 201, 'another conversation is unaffected');
  release();
  await holding;
  const after = await call(app, 'POST', `/api/conversations/${conversation}/messages/`, { token: alice.token, body: { content: 'after' } });
  t.match(after, { status: 201, json: { seq: 2 } }, 'released: stored, with no seq lost to the refused ones');
});
