/**
 * Rich messages (API.md, version 2): replies, reactions, edit history and search, with every
 * bad input of issue 17, on the suite's database kind.
 */
import { sql } from 'drizzle-orm';
import type { Test } from 'tap';
import { createConversation, register, type Session } from '../helpers/api.js';
import { expectError, ids, ISO, nextLink, type RestContext } from '../helpers/rest-context.js';

const path = (cid: number, mid?: number, rest = '') => `/api/conversations/${cid}/messages/${mid === undefined ? '' : `${mid}/`}${rest}`;
const reactionPath = (cid: number, mid: number, emoji: string) => path(cid, mid, `reactions/${encodeURIComponent(emoji)}/`);

export function restRichSuite(t: Test, context: RestContext): void {
  const { database, app, api, sendOk, events } = context;
  const post = (session: Session, cid: number, body: Record<string, unknown>) => api('POST', path(cid), { token: session.token, body });

  // ---------------------------------------------------------------------------------------
  t.test('replies', async (t) => {
    const [alice, bob, carol] = await Promise.all([register(app), register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const other = await createConversation(app, alice, [carol]);
    const original = await sendOk(t, alice, cid, 'x'.repeat(150) + 'ی'.repeat(100));
    const elsewhere = await sendOk(t, alice, other, 'not here');

    const reply = await post(bob, cid, { content: 'an answer', reply_to: original.id });
    t.equal(reply.status, 201, reply.body);
    t.same(reply.json.reply_to, { id: original.id, sender: alice.user.username, content: 'x'.repeat(150) + 'ی'.repeat(50), is_deleted: false }, 'preview of 200 characters');
    t.same(reply.json.reactions, []);
    const plain = await sendOk(t, bob, cid, 'no reply');
    const page = await api('GET', path(cid), { token: alice.token });
    const byId = new Map((page.json as { id: number; reply_to: unknown }[]).map((m) => [m.id, m]));
    t.same(byId.get(reply.json.id), reply.json, 'history serves the same reply as the send echo');
    t.equal((byId.get(plain.id) as { reply_to: unknown }).reply_to, null, 'a message that answers nothing: reply_to null');

    for (const bad of ['1', -1, 0, 1.5, true, { id: 1 }]) {
      expectError(t, await post(bob, cid, { content: 'bad', reply_to: bad }), 400, /reply_to/, `reply_to ${JSON.stringify(bad)}`);
    }
    expectError(t, await post(bob, cid, { content: 'bad', reply_to: elsewhere.id }), 400, /reply_to/, 'a message of another conversation');
    expectError(t, await post(bob, cid, { content: 'bad', reply_to: 9_000_000_000 }), 400, /reply_to/, 'no such message');
    expectError(t, await post(carol, cid, { content: 'bad', reply_to: original.id }), 404, undefined, 'not a member');

    await api('DELETE', path(cid, original.id), { token: alice.token });
    expectError(t, await post(bob, cid, { content: 'late', reply_to: original.id }), 409, /deleted/, 'a deleted original');
    const after = await api('GET', path(cid), { token: bob.token });
    const kept = (after.json as { id: number; reply_to: unknown }[]).find((m) => m.id === reply.json.id);
    t.same(kept?.reply_to, { id: original.id, sender: alice.user.username, content: '', is_deleted: true }, 'no text once the original is deleted');
    const logged = (await events(cid)).find((e) => e.type === 'chat.message' && e.message.id === reply.json.id);
    t.match(logged, { message: { reply_to: { content: '', is_deleted: true } } }, 'the log replays the reply without the deleted text');
    const [{ count } = { count: 0 }] = await database.query<{ count: unknown }>(
      sql`select count(*) as count from messages where content = 'bad' or content = 'late'`,
    );
    t.equal(Number(count), 0, 'no refused reply was stored');
  });

  // ---------------------------------------------------------------------------------------
  t.test('reactions', async (t) => {
    const [alice, bob, carol] = await Promise.all([register(app), register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const other = await createConversation(app, alice, [carol]);
    const message = await sendOk(t, alice, cid, 'react to me');
    const foreign = await sendOk(t, alice, other, 'elsewhere');
    const eventCount = async () => (await events(cid)).length;

    const put = (who: Session, emoji: string, mid = message.id, conv = cid) => api('PUT', reactionPath(conv, mid, emoji), { token: who.token });
    const del = (who: Session, emoji: string, mid = message.id, conv = cid) => api('DELETE', reactionPath(conv, mid, emoji), { token: who.token });

    const first = await put(bob, '👍');
    t.equal(first.status, 200, first.body);
    t.same(first.json.reactions, [{ emoji: '👍', count: 1, users: [bob.user.username] }], 'answers the message with its reactions');
    const logLength = await eventCount();
    const again = await put(bob, '👍');
    t.equal(again.status, 200);
    t.same(again.json.reactions, first.json.reactions, 'a repeat changes nothing');
    t.equal(await eventCount(), logLength, 'a repeat writes no event');
    await put(alice, '👍');
    await put(alice, '🇮🇷');
    const listed = await api('GET', path(cid), { token: alice.token });
    t.same((listed.json as { id: number; reactions: unknown }[]).find((m) => m.id === message.id)?.reactions, [
      { emoji: '👍', count: 2, users: [bob.user.username, alice.user.username] },
      { emoji: '🇮🇷', count: 1, users: [alice.user.username] },
    ], 'history: each emoji once, in the order it first came, with its users');

    for (const good of ['👍🏽', '👨‍👩‍👧‍👦', '1️⃣', '🏳️‍🌈', '❤️']) {
      const response = await put(carol, good, foreign.id, other);
      t.equal(response.status, 200, `${good} is one emoji (${response.body.slice(0, 100)})`);
    }
    const bare = await put(carol, '❤', foreign.id, other);
    t.equal(bare.json.reactions.filter((r: { emoji: string }) => r.emoji === '❤️').length, 1, '❤ and ❤️ are one reaction');
    for (const bad of ['a', 'ok', '👍👍', '<b>', '👍 ', '1', '#', '\u200d', 'x'.repeat(65)]) {
      expectError(t, await put(bob, bad), 400, /emoji/, `emoji ${JSON.stringify(bad)}`);
    }
    expectError(t, await put(carol, '👍'), 404, undefined, 'not a member');
    expectError(t, await put(bob, '👍', foreign.id), 404, undefined, 'a message of another conversation');
    expectError(t, await put(bob, '👍', 9_000_000_000), 404, undefined, 'no such message');

    const removedLength = await eventCount();
    t.equal((await del(bob, '👍')).status, 204);
    t.equal((await del(bob, '👍')).status, 204, 'removing again: 204');
    t.equal(await eventCount(), removedLength + 1, 'one reaction.removed, none for the repeat');
    const log = await events(cid);
    t.same(log.filter((e) => e.type === 'reaction.added' || e.type === 'reaction.removed').map((e) => [e.type, 'emoji' in e ? e.emoji : '', 'user' in e ? e.user : '']), [
      ['reaction.added', '👍', bob.user.username],
      ['reaction.added', '👍', alice.user.username],
      ['reaction.added', '🇮🇷', alice.user.username],
      ['reaction.removed', '👍', bob.user.username],
    ], 'the log replays each change, a removal as a removal');
    t.match(log.at(-1), { seq: Number, conversation_id: cid, message_id: message.id, user_id: bob.user.id });

    // Twenty different emoji at most; one already there still takes more users.
    const crowded = await sendOk(t, alice, cid, 'crowded');
    const EMOJI = ['😀', '😁', '😂', '🤣', '😃', '😄', '😅', '😆', '😉', '😊', '😋', '😎', '😍', '😘', '🥰', '😗', '😙', '😚', '🙂', '🤗'];
    for (const emoji of EMOJI) t.equal((await put(alice, emoji, crowded.id)).status, 200);
    expectError(t, await put(alice, '🤔', crowded.id), 409, /20/, 'a 21st emoji');
    t.equal((await put(bob, '😀', crowded.id)).status, 200, 'an emoji already there takes another user');

    // A deleted message takes none, and loses its own.
    await api('DELETE', path(cid, message.id), { token: alice.token });
    expectError(t, await put(bob, '👍', message.id), 409, /deleted/, 'react to a deleted message');
    t.equal((await del(alice, '🇮🇷')).status, 204, 'unreact on a deleted message: nothing to do');
    const [rows] = await database.query<{ count: unknown }>(sql`select count(*) as count from message_reactions where message_id = ${message.id}`);
    t.equal(Number(rows?.count), 0, 'its reactions are gone');
    const replayed = await events(cid);
    t.notOk(replayed.some((e) => e.type === 'reaction.added' && e.message_id === message.id), 'its reaction events replay as its deletion');
    const deleted = (await api('GET', path(cid), { token: bob.token })).json.find((m: { id: number }) => m.id === message.id);
    t.same(deleted.reactions, []);
  });

  // ---------------------------------------------------------------------------------------
  t.test('edit history', async (t) => {
    const [alice, bob, carol] = await Promise.all([register(app), register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const message = await sendOk(t, alice, cid, 'first');
    const history = (who: Session, mid = message.id) => api('GET', path(cid, mid, 'history/'), { token: who.token });

    t.same((await history(bob)).json, [], 'never edited: []');
    await api('PATCH', path(cid, message.id), { token: alice.token, body: { content: 'second' } });
    await api('PATCH', path(cid, message.id), { token: alice.token, body: { content: 'third' } });
    const versions = await history(bob);
    t.equal(versions.status, 200);
    t.match(versions.json, [{ content: 'first', edited_at: ISO }, { content: 'second', edited_at: ISO }], 'oldest first');
    t.equal(versions.json.length, 2);
    const sent = (await api('GET', path(cid), { token: bob.token })).json.find((m: { id: number }) => m.id === message.id);
    t.equal(versions.json[0].edited_at, sent.timestamp, 'the first version was written when the message was sent');
    t.ok(versions.json[1].edited_at <= sent.edited_at, 'the second when it was first edited');

    expectError(t, await history(carol), 404, undefined, 'not a member');
    expectError(t, await history(bob, 9_000_000_000), 404, undefined, 'no such message');
    expectError(t, await api('GET', path(cid, 0, 'history/'), { token: bob.token }), 400, undefined, 'message id 0');

    await api('DELETE', path(cid, message.id), { token: alice.token });
    t.same((await history(bob)).json, [], 'deleted: []');
    const [row] = await database.query<{ count: unknown }>(sql`select count(*) as count from message_versions where message_id = ${message.id}`);
    t.equal(Number(row?.count), 0, 'its versions are erased');
  });

  // ---------------------------------------------------------------------------------------
  t.test('search', async (t) => {
    const [alice, bob, carol] = await Promise.all([register(app), register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const other = await createConversation(app, alice, [carol]);
    // Words are indexed a moment after the write (search-indexer.ts): every search here first
    // waits for this process's indexer to have applied what it committed.
    const search = async (who: Session, query: Record<string, string | number>) => {
      await app.searchIndex.drain();
      return api('GET', `/api/search/?${new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString()}`, { token: who.token });
    };
    const found = async (who: Session, q: string, extra: Record<string, string | number> = {}) => {
      const response = await search(who, { q, ...extra });
      t.equal(response.status, 200, `${q}: ${response.body.slice(0, 200)}`);
      return ids(response);
    };

    const tag = `z${Date.now().toString(36)}`; // a word only this test writes
    const m1 = await sendOk(t, alice, cid, `Hello World ${tag}`);
    const m2 = await sendOk(t, bob, cid, `the world says HELLO back ${tag}`);
    const m3 = await sendOk(t, alice, other, `hello from elsewhere ${tag}`);
    const persian = await sendOk(t, bob, cid, `من می‌خواهم كتاب علي را بخوانم ${tag}`);
    const accents = await sendOk(t, alice, cid, `Café crème ${tag}`);

    t.same(await found(bob, `${tag} hello world`), [m2.id, m1.id], 'every word, any order, case-insensitive, newest first, only my conversations');
    t.same(await found(alice, `HELLO ${tag}`), [m3.id, m2.id, m1.id], 'across all my conversations');
    t.same(await found(alice, `hello ${tag}`, { conversation_id: other }), [m3.id], 'one conversation');
    t.same(await found(bob, `${tag} wor`), [m2.id, m1.id], 'the last word as a prefix');
    t.same(await found(bob, `wor ${tag}`), [], 'only the last word is a prefix');
    t.same(await found(bob, `${tag} میخواهم`), [persian.id], 'ZWNJ: the word written without it');
    t.same(await found(bob, `${tag} می‌خواهم`), [persian.id], 'ZWNJ: the word written with it');
    t.same(await found(bob, `كتاب ${tag}`), [persian.id], 'Arabic kaf and Persian kaf alike');
    t.same(await found(bob, `${tag} علی`), [persian.id], 'Arabic yeh and Persian yeh alike');
    t.same(await found(bob, `${tag} بخو`), [persian.id], 'a Persian prefix');
    t.same(await found(bob, `${tag} cafe CRÈME`), [accents.id], 'diacritics do not matter');
    t.same(await found(carol, `hello ${tag}`), [m3.id], 'carol sees only her conversation');
    expectError(t, await search(carol, { q: `hello ${tag}`, conversation_id: cid }), 404, undefined, 'a conversation of others');

    // Edits and deletes keep the index right.
    await api('PATCH', path(cid, m1.id), { token: alice.token, body: { content: `Goodbye ${tag}` } });
    t.same(await found(bob, `${tag} hello`), [m2.id], 'an edit drops the old words');
    t.same(await found(bob, `${tag} goodbye`), [m1.id], 'and indexes the new ones');
    await api('DELETE', path(cid, m2.id), { token: bob.token });
    t.same(await found(bob, `${tag} hello`), [], 'never deleted text');
    const [left] = await database.query<{ count: unknown }>(sql`select count(*) as count from message_words where message_id = ${m2.id}`);
    t.equal(Number(left?.count), 0, 'a deleted message keeps no words');

    // Membership now: after leaving, nothing of it is found.
    t.equal((await api('DELETE', `/api/conversations/${other}/members/${carol.user.id}/`, { token: carol.token })).status, 204);
    t.same(await found(carol, `hello ${tag}`), [], 'a conversation left is not searched');

    // Paged with Link.
    const paged: number[] = [];
    for (let i = 0; i < 5; i += 1) paged.push((await sendOk(t, alice, cid, `page ${tag} item ${i}`)).id);
    const firstPage = await search(bob, { q: `page ${tag}`, limit: 2 });
    t.same(ids(firstPage), [paged[4], paged[3]]);
    const link = nextLink(firstPage);
    t.ok(link?.startsWith('/api/search/?'), `Link: ${String(firstPage.headers.link)}`);
    const secondPage = await api('GET', link!, { token: bob.token });
    t.same(ids(secondPage), [paged[2], paged[1]]);
    const thirdPage = await api('GET', nextLink(secondPage)!, { token: bob.token });
    t.same(ids(thirdPage), [paged[0]]);
    t.equal(nextLink(thirdPage), undefined, 'no Link after the last page');
    t.match(thirdPage.json[0], { id: paged[0], conversation_id: cid, sender: alice.user.username, content: `page ${tag} item 0`, reactions: [], reply_to: null });

    // Bad input: 400, never a 500 or a slow scan.
    for (const [label, q] of <[string, string][]>[['empty', ''], ['only punctuation', '?!… ،؛ --'], ['10,000 characters', 'a'.repeat(10_000)], ['too many words', 'a b c d e f g h i']]) {
      const started = Date.now();
      expectError(t, await search(bob, { q }), 400, /q/, label);
      t.ok(Date.now() - started < 2_000, `${label}: answered at once`);
    }
    expectError(t, await api('GET', '/api/search/', { token: bob.token }), 400, /q/, 'no q');
    expectError(t, await search(bob, { q: 'x', limit: 0 }), 400, /limit/, 'limit 0');
    expectError(t, await search(bob, { q: 'x', before: 'abc' }), 400, /before/, 'before not an id');
    expectError(t, await search(bob, { q: 'x', conversation_id: -1 }), 400, /conversation_id/, 'conversation_id not an id');
    expectError(t, await api('GET', '/api/search/?q=x'), 401, undefined, 'no token');
  });
}
