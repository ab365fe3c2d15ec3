/**
 * The presence views (API.md version 2, "Presence") over REST, on the embedded presence store:
 * members only (404 otherwise, as for conversations), paged by user id, offline with a null
 * `last_seen_at` until a first socket, online while one is held (the realtime plugin calls
 * `presence.connected` for each socket; real sockets across replicas are in
 * test/presence-cluster.test.ts), and a user's own view only for those who share a conversation.
 */
import type { Test } from 'tap';
import { createConversation, register } from '../helpers/api.js';
import { expectError, ISO, MAX_INT4, nextLink, type RestContext } from '../helpers/rest-context.js';

export function restPresenceSuite(t: Test, context: RestContext): void {
  const { app, api } = context;

  t.test('presence: the conversation view, paging, and who may see it', async (t) => {
    const [alice, bob, carol, stranger] = await Promise.all([register(app), register(app), register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob, carol]);
    const view = await api('GET', `/api/conversations/${cid}/presence/`, { token: alice.token });
    t.equal(view.status, 200, view.body);
    t.same(
      view.json,
      [alice, bob, carol]
        .sort((x, y) => x.user.id - y.user.id)
        .map((s) => ({ user_id: s.user.id, username: s.user.username, status: 'offline', last_seen_at: null })),
      'by user id; nobody connected yet: offline, last_seen_at null',
    );

    app.presence.connected(bob.user.id);
    const online = await api('GET', `/api/conversations/${cid}/presence/`, { token: carol.token });
    t.match(online.json.find((row: { user_id: number }) => row.user_id === bob.user.id), { status: 'online', last_seen_at: ISO }, 'bob online, seen now');
    app.presence.disconnected(bob.user.id);
    t.match((await api('GET', `/api/users/${bob.user.id}/presence/`, { token: alice.token })).json, { status: 'online' }, 'within the grace: still online');

    const paged = await api('GET', `/api/conversations/${cid}/presence/?limit=2`, { token: alice.token });
    t.equal(paged.json.length, 2);
    const next = nextLink(paged);
    t.ok(next, 'a Link to the next page');
    const rest = await api('GET', next!, { token: alice.token });
    const ids = [alice, bob, carol].map((s) => s.user.id).sort((x, y) => x - y);
    t.same([...paged.json, ...rest.json].map((row: { user_id: number }) => row.user_id), ids, 'the next page holds the rest');

    expectError(t, await api('GET', `/api/conversations/${cid}/presence/`, { token: stranger.token }), 404, undefined, 'a non-member');
    expectError(t, await api('GET', `/api/conversations/${MAX_INT4}/presence/`, { token: alice.token }), 404, undefined, 'no such conversation');
    expectError(t, await api('GET', `/api/conversations/${cid}/presence/?limit=0`, { token: alice.token }), 400, /limit/, 'limit 0');
    expectError(t, await api('GET', `/api/conversations/${cid}/presence/?limit=1001`, { token: alice.token }), 400, /limit/, 'limit past 1000');
    expectError(t, await api('GET', `/api/conversations/abc/presence/`, { token: alice.token }), 400, undefined, 'a bad id');
    expectError(t, await api('GET', `/api/conversations/${cid}/presence/`), 401, undefined, 'no token');

    t.match((await api('GET', `/api/users/${carol.user.id}/presence/`, { token: bob.token })).json, { user_id: carol.user.id, status: 'offline' });
    t.match((await api('GET', `/api/users/${stranger.user.id}/presence/`, { token: stranger.token })).json, { status: 'offline' }, 'oneself');
    expectError(t, await api('GET', `/api/users/${stranger.user.id}/presence/`, { token: alice.token }), 404, undefined, 'someone sharing no conversation');
    expectError(t, await api('GET', `/api/users/${alice.user.id}/presence/`, { token: stranger.token }), 404, undefined, 'the other way round');
    expectError(t, await api('GET', `/api/users/${MAX_INT4}/presence/`, { token: alice.token }), 404, undefined, 'no such user');
  });
}
