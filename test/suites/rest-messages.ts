/**
 * Messages (API.md): send, content rules, MAX_MESSAGE_LENGTH, client_id idempotency, edit and
 * delete permissions, and strangers who learn nothing.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Test } from 'tap';
import { createMemoryBus } from '../../src/bus/bus-memory.js';
import { createConversation, register } from '../helpers/api.js';
import { buildTestApp } from '../helpers/app.js';
import { ISO, MAX_INT4, withoutRequestId, expectError, type Method, type RestContext } from '../helpers/rest-context.js';

export function restMessagesSuite(t: Test, context: RestContext): void {
  const { database, app, req, api, send, sendOk, events } = context;

  // ---------------------------------------------------------------------------------------
  t.test('messages', async (t) => {
    const [alice, bob, carol] = await Promise.all([register(app), register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const other = await createConversation(app, alice, [carol]);

    t.test('send', async (t) => {
      const before = Date.now();
      const sent = await send(alice, cid, '  سلام!  \n');
      t.equal(sent.status, 201, sent.body);
      t.match(sent.json, {
        id: Number,
        sender: alice.user.username,
        content: 'سلام!',
        timestamp: ISO,
        is_edited: false,
        is_deleted: false,
        attachments: [],
        conversation_id: cid,
        sender_id: alice.user.id,
        client_id: null,
        seq: Number,
      });
      t.same(sent.json.attachments, []);
      const at = Date.parse(sent.json.timestamp);
      t.ok(at >= before - 60_000 && at <= Date.now() + 60_000, 'timestamp is now (UTC)');

      const listed = await api('GET', `/api/conversations/${cid}/messages/`, { token: bob.token });
      t.equal(listed.status, 200);
      t.same(listed.json.at(-1), sent.json, 'the other participant reads the same object');

      const unknownFields = await api('POST', `/api/conversations/${cid}/messages/`, {
        token: alice.token,
        body: { content: 'plain', sender: bob.user.username, sender_id: bob.user.id, id: 9_999_999, is_deleted: true, is_edited: true, seq: 9999, timestamp: '1999-01-01T00:00:00.000Z', attachments: [{ id: 1 }] },
      });
      t.equal(unknownFields.status, 201);
      t.match(unknownFields.json, { sender: alice.user.username, is_deleted: false, is_edited: false, attachments: [] });
      t.not(unknownFields.json.id, 9_999_999);
      t.not(unknownFields.json.seq, 9999);
      const [row] = await database.query<{ sender_id: number; is_deleted: boolean }>(
        sql`select sender_id, is_deleted from messages where id = ${unknownFields.json.id}`,
      );
      t.same({ sender_id: Number(row?.sender_id), is_deleted: row?.is_deleted }, { sender_id: alice.user.id, is_deleted: false }, 'stored as sent by the caller');
    });

    t.test('content rules', async (t) => {
      for (const [content, label] of [
        ['', 'empty'],
        ['   ', 'spaces'],
        [' \n\t\r ', 'whitespace'],
        ['\u3000\u00a0', 'unicode spaces'],
        ['a\u0000b', 'NUL'],
        ['\u0000', 'lone NUL'],
      ] as const) {
        expectError(t, await send(alice, cid, content), 400, /content/, label);
      }
      const body = (b: unknown) => api('POST', `/api/conversations/${cid}/messages/`, { token: alice.token, body: b as object });
      expectError(t, await body({}), 400, /content/, 'missing content');
      expectError(t, await body({ content: 5 }), 400, /content/, 'number');
      expectError(t, await body({ content: null }), 400, /content/, 'null');
      expectError(t, await body({ content: ['hi'] }), 400, /content/, 'array');
      expectError(t, await body({ content: { text: 'hi' } }), 400, /content/, 'object');

      t.equal((await send(alice, cid, 'a'.repeat(4000))).status, 201, '4000 characters');
      t.equal((await send(alice, cid, `   ${'a'.repeat(4000)}   `)).status, 201, '4000 after trimming');
      expectError(t, await send(alice, cid, 'a'.repeat(4001)), 400, /content/, '4001 characters');
      const emoji = await send(alice, cid, '😀'.repeat(4000));
      t.equal(emoji.status, 201, '4000 emoji (8000 UTF-16 units) fit: an emoji is one character');
      t.equal([...emoji.json.content].length, 4000, 'stored whole');
      expectError(t, await send(alice, cid, '😀'.repeat(4001)), 400, /content/, '4001 emoji');
      const unicode = await send(alice, cid, 'Ünïcødé ✓ 中文 عربي');
      t.equal(unicode.json.content, 'Ünïcødé ✓ 中文 عربي', 'round-trips');
      const lone = await send(alice, cid, 'lone \ud800 surrogate');
      t.ok([201, 400].includes(lone.status), `a lone surrogate is stored or refused, not a 500 (${lone.status})`);
    });

    t.test('MAX_MESSAGE_LENGTH from the environment', async (t) => {
      const limited = await buildTestApp(t, { database, bus: createMemoryBus(), env: { MAX_MESSAGE_LENGTH: '5' } });
      t.equal((await send(alice, cid, '12345', undefined, limited)).status, 201);
      t.equal((await send(alice, cid, '😀👍🎉🔥✨', undefined, limited)).status, 201, 'five emoji');
      expectError(t, await send(alice, cid, '123456', undefined, limited), 400, /content/);
      expectError(t, await send(alice, cid, '😀👍🎉🔥✨😀', undefined, limited), 400, /content/, 'six emoji');
      const edit = await req(limited, 'PATCH', `/api/conversations/${cid}/messages/${(await sendOk(t, alice, cid, 'x')).id}/`, {
        token: alice.token,
        body: { content: '123456' },
      });
      expectError(t, edit, 400, /content/, 'edits obey it too');
    });

    t.test('client_id: idempotent per sender', async (t) => {
      const key = `k-${randomBytes(6).toString('hex')}`;
      const first = await send(alice, cid, 'once', key);
      t.equal(first.status, 201);
      t.equal(first.json.client_id, key, 'client_id echoed');
      const retry = await send(alice, cid, 'once', key);
      t.equal(retry.status, 200, 'a retry is answered 200');
      t.same(retry.json, first.json, 'with the first message');
      const changed = await send(alice, cid, 'different text', key);
      t.equal(changed.status, 200);
      t.equal(changed.json.content, 'once', 'still the first message');
      const [stored] = await database.query<{ n: number }>(
        sql`select count(*)::int as n from messages where conversation_id = ${cid} and client_id = ${key}`,
      );
      t.equal(stored?.n, 1, 'one row');

      const bobs = await send(bob, cid, 'bob, same key', key);
      t.equal(bobs.status, 201, 'another sender with the same client_id: a new message');
      t.not(bobs.json.id, first.json.id);
      const elsewhere = await send(alice, other, 'other conversation', key);
      t.equal(elsewhere.status, 201, 'same client_id in another conversation: a new message');

      const lastSeq = (await events(cid)).at(-1)?.seq;
      t.equal(lastSeq, bobs.json.seq, 'retries took no seq');

      const raw = (b: unknown) => api('POST', `/api/conversations/${cid}/messages/`, { token: alice.token, body: b as object });
      t.equal((await raw({ content: 'k64', client_id: 'k'.repeat(64) })).status, 201, '64 characters');
      expectError(t, await raw({ content: 'k65', client_id: 'k'.repeat(65) }), 400, /client_id/, '65 characters');
      expectError(t, await raw({ content: 'k0', client_id: '' }), 400, /client_id/, 'empty');
      expectError(t, await raw({ content: 'kn', client_id: 5 }), 400, /client_id/, 'a number');
      expectError(t, await raw({ content: 'kz', client_id: 'a\u0000b' }), 400, /client_id/, 'NUL');
    });

    t.test('edit', async (t) => {
      const message = await sendOk(t, alice, cid, 'first draft');
      const path = `/api/conversations/${cid}/messages/${message.id}/`;
      const edited = await api('PATCH', path, { token: alice.token, body: { content: '  final text  ' } });
      t.equal(edited.status, 200, edited.body);
      t.match(edited.json, { id: message.id, content: 'final text', is_edited: true, is_deleted: false, sender: alice.user.username, edited_at: ISO });
      const listed = await api('GET', `/api/conversations/${cid}/messages/`, { token: bob.token });
      t.match(listed.json.find((m: { id: number }) => m.id === message.id), { content: 'final text', is_edited: true });

      expectError(t, await api('PATCH', path, { token: bob.token, body: { content: 'hijack' } }), 403, undefined, 'another participant');
      expectError(t, await api('PATCH', path, { token: carol.token, body: { content: 'hijack' } }), 404, undefined, 'a stranger');
      expectError(t, await api('PATCH', path, { token: alice.token, body: { content: '   ' } }), 400, /content/, 'empty');
      expectError(t, await api('PATCH', path, { token: alice.token, body: { content: 'a'.repeat(4001) } }), 400, /content/, 'too long');
      expectError(t, await api('PATCH', path, { token: alice.token, body: { content: 'a\u0000' } }), 400, /content/, 'NUL');
      expectError(t, await api('PATCH', path, { token: alice.token, body: {} }), 400, /content/, 'missing');
      expectError(t, await api('PATCH', path, { token: alice.token, body: { content: 1 } }), 400, /content/, 'number');
      expectError(t, await api('PATCH', `/api/conversations/${cid}/messages/${Number.MAX_SAFE_INTEGER}/`, { token: alice.token, body: { content: 'x' } }), 404, undefined, 'no such message');
      expectError(t, await api('PATCH', `/api/conversations/${other}/messages/${message.id}/`, { token: alice.token, body: { content: 'x' } }), 404, undefined, 'message of another conversation');
      const still = await api('GET', `/api/conversations/${cid}/messages/`, { token: alice.token });
      t.equal(still.json.find((m: { id: number }) => m.id === message.id)?.content, 'final text', 'refused edits changed nothing');

      const bobsMessage = await sendOk(t, bob, cid, 'bob speaks');
      expectError(t, await api('DELETE', `/api/conversations/${cid}/messages/${bobsMessage.id}/`, { token: alice.token }), 403, undefined, 'delete by another participant');
      expectError(t, await api('DELETE', `/api/conversations/${cid}/messages/${bobsMessage.id}/`, { token: carol.token }), 404, undefined, 'delete by a stranger');
      expectError(t, await api('DELETE', `/api/conversations/${cid}/messages/${Number.MAX_SAFE_INTEGER}/`, { token: bob.token }), 404, undefined, 'delete of nothing');
      expectError(t, await api('DELETE', `/api/conversations/${other}/messages/${bobsMessage.id}/`, { token: alice.token }), 404, undefined, 'delete through another conversation');

      const deleted = await api('DELETE', path, { token: alice.token });
      t.equal(deleted.status, 204);
      t.equal(deleted.body, '', 'no body');
      expectError(t, await api('PATCH', path, { token: alice.token, body: { content: 'revive' } }), 409, undefined, 'a deleted message cannot be edited');
      t.equal((await api('DELETE', path, { token: alice.token })).status, 204, 'deleting again is harmless');
    });

    t.test('strangers can do nothing, and learn nothing', async (t) => {
      const message = await sendOk(t, alice, cid, 'private');
      const pairs: [Method, string, object | undefined][] = [
        ['GET', `/api/conversations/${cid}/messages/`, undefined],
        ['POST', `/api/conversations/${cid}/messages/`, { content: 'let me in' }],
        ['PATCH', `/api/conversations/${cid}/messages/${message.id}/`, { content: 'edit' }],
        ['DELETE', `/api/conversations/${cid}/messages/${message.id}/`, undefined],
      ];
      for (const [method, path, body] of pairs) {
        const stranger = await api(method, path, { token: carol.token, body });
        const missing = await api(method, path.replace(`/conversations/${cid}/`, `/conversations/${MAX_INT4}/`), { token: carol.token, body });
        expectError(t, stranger, 404, undefined, `${method} as a stranger`);
        expectError(t, missing, 404, undefined, `${method} on nothing`);
        t.same(withoutRequestId(stranger.json), withoutRequestId(missing.json), `${method}: the same answer`);
        t.notMatch(stranger.body, /private/);
      }
      const [count] = await database.query<{ n: number }>(sql`select count(*)::int as n from messages where content = 'let me in'`);
      t.equal(count?.n, 0, 'nothing stored');
    });
  });
}
