/**
 * Concurrent sends share batch statements (src/messages/send-batcher.ts): what a batch must
 * keep true whatever it holds. Runs on PostgreSQL (recorded, to see the batching happen, and
 * with two service instances racing) and on PGlite.
 */
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { createDatabase } from '../src/db/client.js';
import { toNumber } from '../src/db/sql.js';
import { httpAnswer } from '../src/http/errors.js';
import { SendBatcher } from '../src/messages/send-batcher.js';
import { call, createConversation, register, type Session } from './helpers/api.js';
import { buildTestApp, testDatabase } from './helpers/app.js';
import { freshPostgresDatabase, recordingPostgres } from './helpers/database.js';
import { holdConversationRow } from './helpers/row-lock.js';

interface Sent {
  status: number;
  json: { id: number; seq: number; content: string; client_id: string | null; conversation_id: number };
}

const send = (app: FastifyInstance, session: Session, conversationId: number, content: string, clientId?: string): Promise<Sent> =>
  call(app, 'POST', `/api/conversations/${conversationId}/messages/`, { token: session.token, body: { content, client_id: clientId } });

/** Seqs of a conversation's event log and its messages, read back over REST. */
async function history(app: FastifyInstance, session: Session, conversationId: number) {
  const response = await call(app, 'GET', `/api/conversations/${conversationId}/messages/?limit=200`, { token: session.token });
  return response.json as Array<{ id: number; seq: number; content: string; client_id: string | null }>;
}

/** Every message's seq is 1..n with no gap, and ids rise with seqs. */
function checkOrder(t: Test, messages: Array<{ id: number; seq: number }>, label: string): void {
  t.same(
    messages.map((m) => m.seq),
    messages.map((_, i) => i + 1),
    `${label}: seqs 1..${messages.length}, no gap, no repeat`,
  );
  t.same([...messages].sort((a, b) => a.id - b.id), messages, `${label}: ids in seq order`);
}

const AWKWARD = ['a "quoted" word', 'back\\slash \\" and {braces}, commas', 'NULL', 'line one\nline two', 'سلام دنیا 👋🏽', '{"json": [1, 2]}', "it's"];

async function batchSuite(t: Test, app: FastifyInstance) {
  const alice = await register(app);
  const bob = await register(app);
  const carol = await register(app);
  const conversations = await Promise.all(Array.from({ length: 4 }, () => createConversation(app, alice, [bob])));
  const private_ = await createConversation(app, alice, [bob]);

  await t.test('many concurrent sends over several conversations: each gap-free and in order', async (t) => {
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, i) => send(app, i % 2 ? alice : bob, conversations[i % conversations.length]!, `m${i}`, `c${i}`)),
    );
    t.ok(results.every((r) => r.status === 201), 'all stored');
    for (const id of conversations) {
      const messages = await history(app, alice, id);
      t.equal(messages.length, 30, `conversation ${id}: 30 messages`);
      checkOrder(t, messages, `conversation ${id}`);
      const sent = results.filter((r) => r.json.conversation_id === id).map((r) => r.json.seq);
      t.same([...sent].sort((a, b) => a - b), messages.map((m) => m.seq), 'each answer carries its stored seq');
    }
  });

  await t.test('one batch with a stranger, repeated client_ids and awkward text', async (t) => {
    const id = conversations[0]!;
    const before = (await history(app, alice, id)).length;
    const earlier = await send(app, alice, id, 'sent before', 'used-before');
    const [stranger, first, again, reused, ...awkward] = await Promise.all([
      send(app, carol, id, 'let me in', 'carol-1'),
      send(app, alice, id, 'twice in a batch', 'twin'),
      send(app, alice, id, 'twice in a batch (retry)', 'twin'),
      send(app, alice, id, 'sent before (retry)', 'used-before'),
      ...AWKWARD.map((text, i) => send(app, bob, id, text, i % 2 ? `awk${i}` : undefined)),
    ]);
    t.equal(stranger!.status, 404, 'a non-participant is refused, as alone');
    t.equal(first!.status === 201 || again!.status === 201, true, 'one of the twins is stored');
    t.equal(first!.json.id, again!.json.id, 'the other gets the same message back');
    t.equal(reused!.status, 200, 'a client_id used in an earlier statement: the first message back');
    t.equal(reused!.json.id, earlier.json.id);
    t.same(
      awkward.map((r) => r.json.content),
      AWKWARD,
      'text arrives exactly as sent',
    );
    const messages = await history(app, alice, id);
    t.equal(messages.length, before + 2 + AWKWARD.length, 'nothing stored for the stranger or the repeats');
    checkOrder(t, messages, 'after the mixed batch');
    t.same(
      messages.slice(-AWKWARD.length).map((m) => m.content).sort(),
      [...AWKWARD].sort(),
      'and stored exactly as sent',
    );
  });

  await t.test('a conversation nobody may see stays untouched', async (t) => {
    const response = await send(app, carol, private_, 'hello?');
    t.equal(response.status, 404);
    t.same(await history(app, alice, private_), [], 'no message, no seq used');
  });
}

t.test('PostgreSQL: concurrent sends share statements', async (t) => {
  const url = await freshPostgresDatabase(t, 'batch');
  const { database, queries } = recordingPostgres(url, 10);
  t.teardown(() => database.close());
  await database.migrate();
  const app = await buildTestApp(t, { database });
  await batchSuite(t, app);

  const alice = await register(app);
  const bob = await register(app);
  const conversation = await createConversation(app, alice, [bob]);
  const sendsBefore = queries.filter((q) => q.sql.includes('insert into messages')).length;
  await Promise.all(Array.from({ length: 50 }, (_, i) => send(app, alice, conversation, `burst ${i}`)));
  const statements = queries.filter((q) => q.sql.includes('insert into messages')).length - sendsBefore;
  t.ok(statements < 50, `50 concurrent sends took ${statements} statements`);
});

t.test('PostgreSQL: batches find client_ids by index however empty the table was at start', async (t) => {
  const url = await freshPostgresDatabase(t, 'batchplan');
  // One connection, so every batch runs in one server session, as on a long-lived pooled
  // connection: there a prepared statement keeps the plan it settled on.
  const database = createDatabase({ url, embeddedDir: '', poolSize: 1 });
  t.teardown(() => database.close());
  await database.migrate();
  const app = await buildTestApp(t, { database });
  const alice = await register(app);
  const bob = await register(app);
  const conversation = await createConversation(app, alice, [bob]);
  const burst = (label: string) =>
    Promise.all(Array.from({ length: 40 }, (_, i) => send(app, alice, conversation, `${label} ${i}`, `${label}-${i}`)));
  // A fresh deployment's first batches, small and large, while messages is nearly empty…
  for (let round = 0; round < 8; round += 1) await burst(`early${round}`);
  // …then the table grows, and no ANALYZE runs (autovacuum off, or not yet due).
  await database.query(sql`
    insert into messages (conversation_id, sender_id, content, client_id, seq)
    select ${conversation}, ${bob.user.id}, 'stored earlier', 'earlier-' || i, 1000000 + i from generate_series(1, 100000) i`);
  /** Rows of messages read by sequential scans so far; flushed from this session first. */
  const scanned = async () => {
    await database.query(sql`select pg_stat_force_next_flush()`);
    const [row] = await database.query<{ rows: unknown }>(sql`select seq_tup_read as rows from pg_stat_user_tables where relname = 'messages'`);
    return toNumber(row?.rows);
  };
  const before = await scanned();
  const late = await burst('late');
  t.ok(late.every((r) => r.status === 201), 'stored');
  const read = (await scanned()) - before;
  t.ok(read < 1000, `40 sends among 100,000 stored messages read ${read} rows of messages sequentially`);
});

t.test('PGlite: the same', async (t) => {
  const { database } = await testDatabase(t, 'pglite');
  await batchSuite(t, await buildTestApp(t, { database }));
});

t.test('two service instances race the same client_ids: one message each, no seq gap', async (t) => {
  const url = await freshPostgresDatabase(t, 'batchrace');
  const a = await buildTestApp(t, { env: { DATABASE_URL: url, MIGRATE_ON_START: 'true' } });
  const b = await buildTestApp(t, { env: { DATABASE_URL: url } });
  const alice = await register(a);
  const bob = await register(a);
  const conversation = await createConversation(a, alice, [bob]);
  for (let round = 0; round < 5; round += 1) {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => send(i % 2 ? a : b, alice, conversation, `r${round} m${i >> 1}`, `r${round}-${i >> 1}`)),
    );
    t.ok(results.every((r) => r.status === 201 || r.status === 200), `round ${round}: every send answered`);
    for (let i = 0; i < 20; i += 2) t.equal(results[i]!.json.id, results[i + 1]!.json.id, `round ${round}: pair ${i / 2} is one message`);
  }
  const messages = await history(a, alice, conversation);
  t.equal(messages.length, 50, '50 distinct client_ids, 50 messages');
  checkOrder(t, messages, 'after the races');
});

t.test('the send queue is bounded: past it a send is refused as unavailable (503)', async (t) => {
  const url = await freshPostgresDatabase(t, 'batchbound');
  const app = await buildTestApp(t, { env: { DATABASE_URL: url, MIGRATE_ON_START: 'true' } });
  const alice = await register(app);
  const bob = await register(app);
  const conversation = await createConversation(app, alice, [bob]);
  const batcher = new SendBatcher(app.database, {}, 3);
  const { release, done: holding } = await holdConversationRow(t, url, conversation);
  const request = (i: number) => ({ conversationId: conversation, senderId: alice.user.id, content: `m${i}`, clientId: `q${i}` });
  const queued = [0, 1, 2].map((i) => batcher.store(request(i)));
  await t.rejects(batcher.store(request(3)), { name: 'DomainError', message: /unavailable/ }, 'the fourth is refused at once');
  const status = httpAnswer(await batcher.store(request(4)).catch((error: unknown) => error));
  t.match(status, { status: 503, headers: { 'retry-after': /\d+/ } }, 'REST answers it 503 with Retry-After');
  release();
  await holding;
  t.same((await Promise.all(queued)).map((s) => s?.seq), [1, 2, 3], 'the queued ones are stored');
});

t.test('a conversation whose row is held elsewhere does not hold the other conversations’ sends', async (t) => {
  const url = await freshPostgresDatabase(t, 'batchhot');
  const app = await buildTestApp(t, { env: { DATABASE_URL: url, MIGRATE_ON_START: 'true', DATABASE_LOCK_TIMEOUT_MS: '60000' } });
  const alice = await register(app);
  const bob = await register(app);
  const hot = await createConversation(app, alice, [bob]);
  const quiet = await createConversation(app, alice, [bob]);
  const batcher = new SendBatcher(app.database);
  const request = (conversationId: number, content: string, clientId: string | null = null) => ({ conversationId, senderId: alice.user.id, content, clientId });

  const { release, done: holding } = await holdConversationRow(t, url, hot);
  const held = [batcher.store(request(hot, 'h1')), batcher.store(request(hot, 'h2', 'c2'))];
  const elsewhere = batcher.store(request(quiet, 'q1'));
  // Resolves while the hot row is still held: the main lane passed over it instead of waiting.
  t.match(await elsewhere, { seq: 1 }, 'the other conversation’s send is stored while the row is held');
  t.equal(batcher.queued, 2, 'the hot conversation’s sends wait in the other lane');
  // Later sends to the hot conversation queue behind the held ones, not past them.
  const later = [batcher.store(request(hot, 'h3')), batcher.store(request(hot, 'h2 again', 'c2'))];
  t.match(await batcher.store(request(quiet, 'q2')), { seq: 2 }, 'and the main lane keeps going');
  release();
  await holding;
  const stored = await Promise.all([...held, ...later]);
  t.same(stored.map((s) => s?.seq), [1, 2, 3, undefined], 'stored in the order they came, the repeated client_id once');
  const messages = await history(app, alice, hot);
  t.same(messages.map((m) => m.content), ['h1', 'h2', 'h3'], 'history in order');
  checkOrder(t, messages, 'the hot conversation');
});
