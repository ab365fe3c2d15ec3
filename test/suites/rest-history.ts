/**
 * Reading history back: cursor pagination with Link headers, and deleted content that no
 * read path, replay or table returns again.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Test } from 'tap';
import { createConversation, register } from '../helpers/api.js';
import { nextLink, ids, expectError, type RestContext } from '../helpers/rest-context.js';

export function restHistorySuite(t: Test, context: RestContext): void {
  const { database, app, seen, api, send, sendOk, events } = context;

  // ---------------------------------------------------------------------------------------
  t.test('pagination', async (t) => {
    const [alice, bob] = await Promise.all([register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const path = `/api/conversations/${cid}/messages/`;
    const page = (query = '') => api('GET', `${path}${query}`, { token: bob.token });

    const empty = await page();
    t.same(empty.json, [], 'no messages: []');
    t.notOk(empty.headers.link, 'no Link on an empty conversation');

    const sent: number[] = [];
    for (let i = 0; i < 50; i++) sent.push((await sendOk(t, i % 2 ? bob : alice, cid, `m${i}`)).id);
    const fifty = await page();
    t.same(ids(fifty), sent, 'exactly 50: one full page');
    t.notOk(nextLink(fifty), 'no Link: nothing older');
    for (let i = 50; i < 120; i++) sent.push((await sendOk(t, i % 2 ? bob : alice, cid, `m${i}`)).id);
    const interleaved = await createConversation(app, bob, [alice]);
    await sendOk(t, alice, interleaved, 'ids of another conversation in between');
    sent.push((await sendOk(t, alice, cid, 'm120')).id);
    t.equal(sent.length, 121);

    const first = await page();
    t.equal(first.status, 200);
    t.same(ids(first), sent.slice(-50), 'default: the newest 50, ascending');
    t.same(first.json.map((m: { content: string }) => m.content), sent.slice(-50).map((_, i) => `m${71 + i}`));
    const next = nextLink(first);
    t.ok(next, 'Link rel="next" when older messages exist');
    t.match(first.headers.link, /^<http:\/\/chat\.test\/api\/conversations\/\d+\/messages\/\?[^>]+>; rel="next"/, 'absolute URL on PUBLIC_URL');
    t.match(next, new RegExp(`before=${sent.at(-50)}`));
    const second = await page(next!.slice(path.length));
    t.same(ids(second), sent.slice(-100, -50));
    const third = await api('GET', nextLink(second)!, { token: bob.token });
    t.same(ids(third), sent.slice(0, -100), 'the last page holds the rest');
    t.notOk(nextLink(third), 'no rel="next" on the last page');

    // Walk the whole history with a small page: every message once, in order.
    const walked: number[] = [];
    let cursor: string | undefined = `${path}?limit=7`;
    let pages = 0;
    while (cursor) {
      const response = await api('GET', cursor, { token: bob.token });
      t.equal(response.status, 200);
      walked.unshift(...ids(response));
      cursor = nextLink(response);
      pages++;
    }
    t.equal(pages, Math.ceil(121 / 7));
    t.same(walked, sent, 'following rel="next" visits every message once');

    t.same(ids(await page('?limit=1')), sent.slice(-1), 'limit=1');
    const all = await page('?limit=200');
    t.same(ids(all), sent, 'limit=200 returns all 121');
    t.notOk(nextLink(all));
    t.notOk(nextLink(await page('?limit=121')), 'limit equal to the count: no next');
    t.ok(nextLink(await page('?limit=120')), 'one short: next');

    t.same(ids(await page(`?before=${sent[10]}&limit=5`)), sent.slice(5, 10), 'before: the older page');
    const oldest = await page(`?before=${sent[0]}`);
    t.same(oldest.json, [], 'nothing before the first');
    t.notOk(nextLink(oldest));
    t.same(ids(await page(`?before=${Number.MAX_SAFE_INTEGER}&limit=3`)), sent.slice(-3), 'before beyond the newest');

    t.same(ids(await page(`?after=${sent[10]}&limit=5`)), sent.slice(11, 16), 'after: the newer page, ascending');
    t.same(ids(await page(`?after=${sent[115]}`)), sent.slice(116), 'after near the end');
    t.same((await page(`?after=${sent.at(-1)}`)).json, [], 'nothing after the newest');
    t.same(ids(await page(`?after=${sent[10]}&before=${sent[20]}`)), sent.slice(11, 20), 'between after and before');
    t.same(ids(await page(`?after=${sent[10]}&before=${sent[20]}&limit=3`)), sent.slice(17, 20), 'between, limited: the newest of the range');

    for (const bad of ['0', '201', '-1', 'abc', '1.5', '', '1e400', '99999999999999999999', '0x10', '1e1', '+5', '%205']) {
      expectError(t, await page(`?limit=${bad}`), 400, /limit/, `limit=${bad}`);
    }
    for (const param of ['before', 'after']) {
      for (const bad of ['0', '-1', 'abc', '1.5', '9223372036854775808', '1e400', '0x10', '%00', '1e1', '+5', '%205']) {
        expectError(t, await page(`?${param}=${bad}`), 400, new RegExp(param), `${param}=${bad}`);
      }
    }
  });

  // ---------------------------------------------------------------------------------------
  t.test('deleted content never comes back', async (t) => {
    const [alice, bob] = await Promise.all([register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const original = `original-${randomBytes(8).toString('hex')}`;
    const edited = `edited-${randomBytes(8).toString('hex')}`;
    const key = `key-${randomBytes(4).toString('hex')}`;
    await sendOk(t, bob, cid, 'before it');
    const sent = await send(alice, cid, original, key);
    t.equal(sent.status, 201);
    const id = sent.json.id as number;
    await sendOk(t, bob, cid, 'after it');
    const path = `/api/conversations/${cid}/messages/${id}/`;
    t.equal((await api('PATCH', path, { token: alice.token, body: { content: edited } })).status, 200);

    const from = seen.length;
    t.equal((await api('DELETE', path, { token: alice.token })).status, 204);

    const history = await api('GET', `/api/conversations/${cid}/messages/`, { token: bob.token });
    const tombstone = history.json.find((m: { id: number }) => m.id === id);
    t.match(tombstone, { id, is_deleted: true, content: '', attachments: [], sender: alice.user.username });
    t.same(tombstone.attachments, []);
    t.equal(history.json.length, 3, 'the message keeps its place in the history');

    // Every way a client could ask for it again.
    await api('GET', `/api/conversations/${cid}/messages/`, { token: alice.token });
    await api('GET', `/api/conversations/${cid}/messages/?before=${id + 1}&limit=1`, { token: bob.token });
    await api('GET', `/api/conversations/${cid}/messages/?after=${id - 1}&limit=1`, { token: bob.token });
    await api('GET', `/api/conversations/${cid}/messages/?limit=200`, { token: bob.token });
    expectError(t, await api('PATCH', path, { token: alice.token, body: { content: original } }), 409, undefined, 'edit back');
    expectError(t, await api('PATCH', path, { token: bob.token, body: { content: 'x' } }), 403, undefined, 'edit by the other');
    await api('DELETE', path, { token: alice.token });
    const retried = await send(alice, cid, original, key);
    t.equal(retried.status, 200, 'a retried client_id returns the message…');
    t.match(retried.json, { id, is_deleted: true, content: '' }, '…deleted, without its text');
    await api('GET', `/api/conversations/${cid}/`, { token: bob.token });
    await api('GET', '/api/conversations/', { token: alice.token });
    await api('GET', '/api/conversations/', { token: bob.token });
    await api('GET', `/api/users/?search=${encodeURIComponent(alice.user.username)}`, { token: bob.token });

    const leaks = seen.slice(from).filter((r) => r.body.includes(original) || r.body.includes(edited));
    t.same(leaks.map((r) => r.label), [], 'no response after the delete carries the text');

    const [row] = await database.query<{ content: string; is_deleted: boolean }>(sql`select content, is_deleted from messages where id = ${id}`);
    t.same(row, { content: '', is_deleted: true }, 'the row keeps no text');
    const replay = JSON.stringify(await events(cid));
    t.notOk(replay.includes(original) || replay.includes(edited), 'the event replay does not carry it');
    const tables = await database.query<{ tablename: string }>(sql`select tablename from pg_tables where schemaname = 'public'`);
    t.ok(tables.length >= 5);
    for (const { tablename } of tables) {
      const [hit] = await database.query<{ n: number }>(
        sql`select count(*)::int as n from ${sql.identifier(tablename)} x where x::text like ${`%${original}%`} or x::text like ${`%${edited}%`}`,
      );
      t.equal(hit?.n, 0, `no trace in table ${tablename}`);
    }
  });
}
