/**
 * Search stays on its index as history grows (issue 17): a database with 300,000 messages
 * over 1,000 conversations and their words, analysed; user 1 is in 100 of the conversations.
 * The statements `GET /api/search/` really sends, for a whole word with a prefix, a prefix
 * alone, and one conversation, are explained with their values: the driving word is read
 * from `message_words_word_idx` (or, for a prefix alone, `message_words_head_idx`), never by
 * a sequential scan of the words or the messages.
 */
import postgres from 'postgres';
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { buildTestApp } from './helpers/app.js';
import { call } from './helpers/api.js';
import { explainDatabase, indexesOf, outline, plansOf, seqScans } from './helpers/explain.js';

const USERS = 2_000;
const CONVERSATIONS = 1_000;
const MESSAGES = 300_000;
const WATCHED = new Set(['messages', 'message_words', 'participants', 'users']);

t.test('search statements use the words index', async (t) => {
  const { database, queries, admin } = await explainDatabase(t, 'explain_search');
  await admin.unsafe(`insert into users (username, password_hash) select 'u' || i, 'scrypt$x' from generate_series(1, ${USERS}) i`);
  await admin.unsafe(`insert into conversations (created_by_id, member_count) select i % ${USERS} + 1, 3 from generate_series(1, ${CONVERSATIONS}) i`);
  await admin.unsafe(`insert into participants (conversation_id, user_id)
    select c, (3 * c + k) % ${USERS} + 2 from generate_series(1, ${CONVERSATIONS}) c, generate_series(0, 2) k on conflict do nothing`);
  await admin.unsafe(`insert into participants (conversation_id, user_id) select c * 10, 1 from generate_series(1, 100) c on conflict do nothing`);
  // Three words a message: one of 1,000 ("topic…"), one of 7 ("mood…"), and "common".
  await admin.unsafe(`insert into messages (conversation_id, sender_id, content, seq)
    select i % ${CONVERSATIONS} + 1, 2, 'topic' || (i % 1000) || ' mood' || (i % 7) || ' common', i / ${CONVERSATIONS} + 1
      from generate_series(0, ${MESSAGES - 1}) i`);
  await admin.unsafe(`insert into message_words (message_id, conversation_id, word)
    select m.id, m.conversation_id, w from messages m, regexp_split_to_table(m.content, ' ') w`);
  await admin.unsafe(`analyze`);

  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  const token = app.signToken({ id: 1, username: 'u1' });
  const cases: [string, string, string][] = [
    ['a whole word and a prefix', '/api/search/?q=topic12+com', 'message_words_word_idx'],
    ['a prefix alone', '/api/search/?q=topic12', 'message_words_head_idx'],
    ['a rare word in one conversation', '/api/search/?q=topic10+mood3&conversation_id=10', 'message_words_word_idx'],
  ];
  let n = 0;
  for (const [label, path, index] of cases) {
    const from = queries.length;
    const response = await call(app, 'GET', path, { token });
    t.equal(response.status, 200, `${label}: ${response.body.slice(0, 200)}`);
    t.ok(Array.isArray(response.json), label);
    const statement = queries.slice(from).find((query) => /from message_words w/.test(query.sql));
    if (!statement) {
      t.fail(`${label}: no search statement recorded`);
      continue;
    }
    const [plan] = await plansOf(admin, statement, `explained_search_${++n}`);
    t.comment(`${label}: ${outline(plan!)}`);
    t.same(seqScans(plan!, WATCHED), [], `${label}: no Seq Scan on ${[...WATCHED].join('/')}`);
    t.ok(indexesOf(plan!).has(index), `${label}: drives by ${index}`, { used: [...indexesOf(plan!)] });
    if (label !== 'a prefix alone') {
      const used = indexesOf(plan!);
      // Either index leads with what a per-message check knows: the message id, or the prefix's head.
      t.ok(used.has('message_words_pkey') || used.has('message_words_head_idx'), `${label}: checks the other words by an index`, { used: [...used] });
    }
  }
});
