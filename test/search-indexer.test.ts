/**
 * The search index follows the event log (src/messages/search-indexer.ts), on PostgreSQL with
 * two apps (two replicas' worth of pools and indexers) on one database: sends through both
 * to one conversation are all indexed exactly once; an edit and a delete made on the other
 * replica converge; a conversation whose progress row another transaction holds is left
 * marked and indexed once it is free; messages stored with no index at all (before the
 * index existed, or by a replica that died before its round) are found by a sweep and
 * indexed in rounds of EVENTS_PER_ROUND.
 */
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { createDatabase, type DatabaseHandle } from '../src/db/client.js';
import { EventKind } from '../src/db/schema/index.js';
import { EVENTS_PER_ROUND } from '../src/messages/search-indexer.js';
import { call, createConversation, register, type Session } from './helpers/api.js';
import { buildTestApp, testDatabase } from './helpers/app.js';
import { holdRow } from './helpers/row-lock.js';

async function twoReplicas(t: Test) {
  const { database, url } = await testDatabase(t, 'postgres');
  const second = createDatabase({ url: url!, embeddedDir: '', poolSize: 5 });
  t.teardown(() => second.close());
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  const a = await buildTestApp(t, { database, bus });
  const b = await buildTestApp(t, { database: second, bus });
  return { database, url: url!, a, b };
}

const count = async (database: DatabaseHandle, statement: ReturnType<typeof sql>): Promise<number> => {
  const [row] = await database.query<{ n: unknown }>(statement);
  return Number(row?.n ?? 0);
};

const progressBehind = (database: DatabaseHandle, cid: number) =>
  count(database, sql`select c.last_seq - coalesce(p.indexed_seq, 0) as n from conversations c left join search_progress p on p.conversation_id = c.id where c.id = ${cid}`);

t.test('sends through two replicas to one conversation: every message indexed once, progress at last_seq', async (t) => {
  const { database, a, b } = await twoReplicas(t);
  const alice = await register(a);
  const bob = await register(b);
  const cid = await createConversation(a, alice, [bob]);
  const tag = `t${Date.now().toString(36)}`;
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < 200; i += 1) {
    const [app, who] = i % 2 === 0 ? [a, alice] : [b, bob];
    sends.push(call(app, 'POST', `/api/conversations/${cid}/messages/`, { token: who.token, body: { content: `${tag} number${i} shared words` } }));
  }
  const answers = (await Promise.all(sends)) as Array<{ status: number }>;
  t.ok(answers.every((answer) => answer.status === 201), 'all 200 stored');
  await Promise.all([a.searchIndex.drain(), b.searchIndex.drain()]);
  // A replica's round may have found the other's lock: whatever is left marked goes in the next round.
  await Promise.all([a.searchIndex.drain(), b.searchIndex.drain()]);
  t.equal(await count(database, sql`select count(distinct message_id) as n from message_words where word = ${tag}`), 200, 'every message has its words');
  t.equal(await count(database, sql`select count(*) as n from message_words where word = 'shared'`), 200, 'each word once per message');
  t.equal(await progressBehind(database, cid), 0, 'progress reached the conversation’s last seq');
  const page = await call(b, 'GET', `/api/search/?q=${tag}+number19&limit=5`, { token: bob.token });
  const newest = await database.query<{ id: unknown }>(
    sql`select id from messages where conversation_id = ${cid} and content ~ ' number19[0-9]? ' order by id desc limit 5`,
  );
  t.same(
    (page.json as Array<{ id: number }>).map((m) => m.id),
    newest.map((row) => Number(row.id)),
    'found newest first (number19 as a prefix)',
  );
});

t.test('an edit and a delete on the other replica: the index converges to the text as it is', async (t) => {
  const { database, a, b } = await twoReplicas(t);
  const alice = await register(a);
  const bob = await register(a);
  const cid = await createConversation(a, alice, [bob]);
  const edited = (await call(a, 'POST', `/api/conversations/${cid}/messages/`, { token: alice.token, body: { content: 'original wording here' } })).json as { id: number };
  const deleted = (await call(a, 'POST', `/api/conversations/${cid}/messages/`, { token: alice.token, body: { content: 'soon removed text' } })).json as { id: number };
  // Replica a indexes the sends while replica b edits and deletes: either order must end right.
  const indexing = a.searchIndex.drain();
  const edit = await call(b, 'PATCH', `/api/conversations/${cid}/messages/${edited.id}/`, { token: alice.token, body: { content: 'rewritten entirely' } });
  t.equal(edit.status, 200, edit.body);
  t.equal((await call(b, 'DELETE', `/api/conversations/${cid}/messages/${deleted.id}/`, { token: alice.token })).status, 204);
  await indexing;
  await Promise.all([a.searchIndex.drain(), b.searchIndex.drain()]);
  const words = async (id: number) =>
    (await database.query<{ word: string }>(sql`select word from message_words where message_id = ${id} order by word`)).map((r) => r.word);
  t.same(await words(edited.id), ['entirely', 'rewritten'], 'the edited message has the new words only');
  t.same(await words(deleted.id), [], 'the deleted message has none');
  t.equal(await progressBehind(database, cid), 0, 'nothing left behind');
  const found = await call(a, 'GET', '/api/search/?q=original', { token: bob.token });
  t.same(found.json, [], 'the old wording finds nothing');
  // An edit that keeps some words, indexed after its first version was: the kept rows stay
  // (no second insert of them), the dropped one goes, the new one comes.
  const kept = (await call(a, 'POST', `/api/conversations/${cid}/messages/`, { token: alice.token, body: { content: 'alpha beta gamma' } })).json as { id: number };
  await a.searchIndex.drain();
  t.same(await words(kept.id), ['alpha', 'beta', 'gamma']);
  t.equal((await call(b, 'PATCH', `/api/conversations/${cid}/messages/${kept.id}/`, { token: alice.token, body: { content: 'beta gamma delta' } })).status, 200);
  await b.searchIndex.drain();
  t.same(await words(kept.id), ['beta', 'delta', 'gamma'], 'the index holds the new text\'s words, each once');
  t.equal(await progressBehind(database, cid), 0, 'the edit indexed: nothing left behind');
});

t.test('a progress row held elsewhere: passed over, left marked, indexed once free', async (t) => {
  const { database, url, a } = await twoReplicas(t);
  const alice = await register(a);
  const bob = await register(a);
  const cid = await createConversation(a, alice, [bob]);
  await call(a, 'POST', `/api/conversations/${cid}/messages/`, { token: alice.token, body: { content: 'first indexed' } });
  await a.searchIndex.drain();
  await call(a, 'POST', `/api/conversations/${cid}/messages/`, { token: alice.token, body: { content: 'waits for the lock' } });

  const { release, done } = await holdRow(t, url, (tx) => tx`select 1 from search_progress where conversation_id = ${cid} for update`);
  await a.searchIndex.drain();
  t.equal(await count(database, sql`select count(*) as n from message_words where word = 'lock'`), 0, 'not indexed while the row is held');
  t.equal(a.searchIndex.backlog, 1, 'still marked');
  release();
  await done;
  await a.searchIndex.drain();
  t.equal(await count(database, sql`select count(*) as n from message_words where word = 'lock'`), 1, 'indexed once free');
  t.equal(a.searchIndex.backlog, 0, 'nothing marked');
});

t.test('messages with no index (older data, a replica that died first): a sweep finds them, rounds index them', async (t) => {
  const { database, a } = await twoReplicas(t);
  const alice: Session = await register(a);
  const bob = await register(a);
  const cid = await createConversation(a, alice, [bob]);
  const total = EVENTS_PER_ROUND + 500;
  // Stored as no replica would have indexed them: rows written straight into the tables.
  await database.query(sql`
    with made as (
      insert into messages (conversation_id, sender_id, content, seq)
      select ${cid}, ${alice.user.id}, 'backfilled row' || g, c.last_seq + g
        from generate_series(1, ${total}) g, conversations c where c.id = ${cid}
      returning id, seq),
    logged as (
      insert into conversation_events (conversation_id, seq, kind, message_id, message_count)
      select ${cid}, seq, ${EventKind.messageCreated}, id, seq from made)
    update conversations set last_seq = last_seq + ${total}, message_count = message_count + ${total} where id = ${cid}`);
  t.ok((await progressBehind(database, cid)) >= total, 'behind by every row');
  t.equal(a.searchIndex.backlog, 0, 'no replica marked it');
  t.ok((await a.searchIndex.sweep()) >= 1, 'the sweep finds the conversation');
  await a.searchIndex.drain();
  t.equal(await count(database, sql`select count(*) as n from message_words where word = 'backfilled'`), total, `all ${total} indexed, in more than one round`);
  t.equal(await progressBehind(database, cid), 0, 'progress at last_seq');
  const found = await call(a, 'GET', `/api/search/?q=row${total}`, { token: bob.token });
  t.equal((found.json as unknown[]).length, 1, 'the newest one is found by its word');
});

t.test('words already there for messages the progress does not cover (written with the send by an earlier version): indexed once, not stuck', async (t) => {
  const { database, a } = await twoReplicas(t);
  const alice: Session = await register(a);
  const bob = await register(a);
  const cid = await createConversation(a, alice, [bob]);
  await call(a, 'POST', `/api/conversations/${cid}/messages/`, { token: alice.token, body: { content: 'first round' } });
  await a.searchIndex.drain();
  // As the send path once wrote a message: with its words, no progress moved, no replica
  // marking it (one statement, so no indexer round can come between). A sweep finds it.
  const [made] = await database.query<{ id: unknown }>(sql`
    with made as (
      insert into messages (conversation_id, sender_id, content, seq)
      select ${cid}, ${alice.user.id}, 'early words here', c.last_seq + 1 from conversations c where c.id = ${cid}
      returning id, seq),
    logged as (
      insert into conversation_events (conversation_id, seq, kind, message_id, message_count)
      select ${cid}, seq, ${EventKind.messageCreated}, id, seq from made),
    worded as (
      insert into message_words (message_id, conversation_id, word)
      select made.id, ${cid}, w from made, unnest(array['early', 'words', 'stale']) w),
    bumped as (
      update conversations set last_seq = last_seq + 1, message_count = message_count + 1 where id = ${cid})
    select id from made`);
  const messageId = Number(made!.id);
  t.ok((await a.searchIndex.sweep()) >= 1, 'the sweep finds the conversation behind');
  await a.searchIndex.drain();
  t.equal(a.searchIndex.backlog, 0, 'nothing left marked');
  t.equal(await progressBehind(database, cid), 0, 'progress at last_seq');
  const words = await database.query<{ word: string }>(sql`select word from message_words where message_id = ${messageId} order by word`);
  t.same(words.map((row) => row.word), ['early', 'here', 'words'], 'the message’s words, each once, and none it does not have');
});
