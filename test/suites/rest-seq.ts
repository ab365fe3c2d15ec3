/**
 * The write path's ordering: every create, edit and delete takes the next seq, also with
 * two app instances writing to one database at once.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Test } from 'tap';
import { createMemoryBus } from '../../src/bus/bus-memory.js';
import { createDatabase, type DatabaseHandle } from '../../src/db/client.js';
import { readEvents } from '../../src/messages/event-log.js';
import { createConversation, register } from '../helpers/api.js';
import { buildTestApp } from '../helpers/app.js';
import { ids, expectGapFree, type RestContext } from '../helpers/rest-context.js';

export function restSeqSuite(t: Test, context: RestContext): void {
  const { kind, database, url, app, req, api, send, sendOk, events } = context;

  // ---------------------------------------------------------------------------------------
  t.test('seq: every create, edit and delete takes the next one', async (t) => {
    const [alice, bob, carol] = await Promise.all([register(app), register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const base = `/api/conversations/${cid}/messages/`;
    const m1 = await sendOk(t, alice, cid, 'one');
    const m2 = await sendOk(t, alice, cid, 'two');
    const m3 = await sendOk(t, bob, cid, 'three');
    t.same([m1.seq, m2.seq, m3.seq], [1, 2, 3], 'messages carry their seq');
    // Refusals between the writes must not use a seq.
    await api('PATCH', `${base}${m1.id}/`, { token: bob.token, body: { content: 'no' } });
    await api('POST', base, { token: carol.token, body: { content: 'no' } });
    await api('POST', base, { token: alice.token, body: { content: '  ' } });
    t.equal((await api('PATCH', `${base}${m1.id}/`, { token: alice.token, body: { content: 'one, edited' } })).status, 200);
    await api('DELETE', `${base}${m3.id}/`, { token: alice.token });
    t.equal((await api('DELETE', `${base}${m2.id}/`, { token: alice.token })).status, 204);
    await api('PATCH', `${base}${m2.id}/`, { token: alice.token, body: { content: 'no' } });
    await api('DELETE', `${base}${m2.id}/`, { token: alice.token });
    const m4 = await sendOk(t, bob, cid, 'four');
    t.equal(m4.seq, 6);
    t.equal((await api('PATCH', `${base}${m4.id}/`, { token: bob.token, body: { content: 'four, edited' } })).status, 200);
    t.equal((await api('DELETE', `${base}${m4.id}/`, { token: bob.token })).status, 204);

    const log = await events(cid);
    expectGapFree(t, log.map((e) => e.seq), 'event log');
    t.same(
      log.map((e) => e.type),
      ['chat.message', 'chat.message', 'chat.message', 'message.edited', 'message.deleted', 'chat.message', 'message.deleted', 'message.deleted'],
      'event kinds (an edit of a since-deleted message replays as its deletion)',
    );
    t.equal((await events(cid)).length, 8);
    t.same((await readEvents(database, app.links, cid, 5, 2)).map((e) => e.seq), [6, 7], 'resume after a seq, limited');
    const conversation = await api('GET', `/api/conversations/${cid}/`, { token: alice.token });
    t.equal(conversation.json.last_seq, 8, 'the conversation knows its newest seq');
  });

  // ---------------------------------------------------------------------------------------
  t.test('concurrency across two app instances on one database', async (t) => {
    let secondDatabase: DatabaseHandle = database;
    if (kind === 'postgres') {
      // A second pool of its own: two replicas in all but process.
      secondDatabase = createDatabase({ url, embeddedDir: '', poolSize: 10 });
      t.teardown(() => secondDatabase.close());
    }
    const second = await buildTestApp(t, { database: secondDatabase, bus: createMemoryBus() });
    const [alice, bob] = await Promise.all([register(app), register(second)]);
    const cid = await createConversation(second, alice, [bob]);

    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => send(i % 3 ? alice : bob, cid, `parallel ${i}`, undefined, i % 2 ? app : second)),
    );
    t.same([...new Set(results.map((r) => r.status))], [201], 'all 200 sent');
    const seqs = results.map((r) => r.json.seq as number).sort((x, y) => x - y);
    expectGapFree(t, seqs, '200 parallel sends');
    t.equal(new Set(results.map((r) => r.json.id)).size, 200, '200 distinct ids');
    const listed = await api('GET', `/api/conversations/${cid}/messages/?limit=200`, { token: alice.token });
    t.equal(listed.json.length, 200, '200 messages stored');
    const bySeq = [...listed.json].sort((x: { seq: number }, y: { seq: number }) => x.seq - y.seq);
    t.same(bySeq.map((m: { id: number }) => m.id), ids(listed), 'id order is seq order');
    expectGapFree(t, (await events(cid)).map((e) => e.seq), 'event log');

    const key = `same-${randomBytes(4).toString('hex')}`;
    const retries = await Promise.all(
      Array.from({ length: 20 }, (_, i) => send(alice, cid, `retry ${i}`, key, i % 2 ? app : second)),
    );
    t.equal(retries.filter((r) => r.status === 201).length, 1, 'one 201');
    t.equal(retries.filter((r) => r.status === 200).length, 19, 'nineteen 200s');
    t.equal(new Set(retries.map((r) => r.json.id)).size, 1, 'all carry the same id');
    const [count] = await database.query<{ n: number }>(
      sql`select count(*)::int as n from messages where conversation_id = ${cid} and client_id = ${key}`,
    );
    t.equal(count?.n, 1, 'exactly one row');
    t.equal(retries[0]?.json.seq, 201, 'it took seq 201');
    const log = await events(cid);
    expectGapFree(t, log.map((e) => e.seq), 'after the retries');
    t.equal(log.length, 201);

    // Edits racing a delete of the same message: serialised; the delete wins for good.
    const target = await sendOk(t, alice, cid, 'contested');
    const secretEdit = `race-${randomBytes(6).toString('hex')}`;
    const raced = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) =>
        req(i % 2 ? app : second, 'PATCH', `/api/conversations/${cid}/messages/${target.id}/`, { token: alice.token, body: { content: `${secretEdit} ${i}` } }),
      ),
      req(second, 'DELETE', `/api/conversations/${cid}/messages/${target.id}/`, { token: alice.token }),
    ]);
    t.ok(raced.slice(0, 10).every((r) => r.status === 200 || r.status === 409), 'each edit applied before the delete, or refused after it');
    t.equal(raced[10]?.status, 204);
    const [row] = await database.query<{ content: string }>(sql`select content from messages where id = ${target.id}`);
    t.equal(row?.content, '', 'no edit resurrected the text');
    const final = await events(cid);
    expectGapFree(t, final.map((e) => e.seq), 'after the race');
    t.equal(final.length, 201 + 1 + raced.filter((r) => r.status === 200 || r.status === 204).length, 'one seq per applied write');
    t.notOk(JSON.stringify(final).includes(secretEdit), 'the replay has no raced text');
  });
}
