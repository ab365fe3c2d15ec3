/**
 * Users (API.md): the caller's own record and the username prefix search.
 */
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { register } from '../helpers/api.js';
import { expectError, type RestContext } from '../helpers/rest-context.js';

export function restUsersSuite(t: Test, context: RestContext): void {
  const { app, api, insertUsers } = context;

  // ---------------------------------------------------------------------------------------
  t.test('users', async (t) => {
    const alice = await register(app);
    const me = await api('GET', '/api/users/me/', { token: alice.token });
    t.equal(me.status, 200);
    t.same(me.json, { id: alice.user.id, username: alice.user.username });

    const prefix = `s${randomBytes(4).toString('hex')}`;
    const names = Array.from({ length: 25 }, (_, i) => `${prefix}${String(i).padStart(2, '0')}`);
    await insertUsers([...names, `${prefix}_under`, `${prefix}xunder`, `${prefix.toUpperCase()}Caps`]);

    const search = (term: string) => api('GET', `/api/users/?search=${encodeURIComponent(term)}`, { token: alice.token });

    const many = await search(prefix);
    t.equal(many.status, 200);
    t.equal(many.json.length, 20, 'at most 20');
    t.ok(many.json.every((u: { username: string }) => u.username.toLowerCase().startsWith(prefix)), 'all start with the prefix');
    t.ok(many.json.every((u: { id: unknown; username: unknown }) => Number.isInteger(u.id) && typeof u.username === 'string'));
    t.same(Object.keys(many.json[0]).sort(), ['id', 'username'], 'user objects only: no hashes');
    t.same(many.json.map((u: { username: string }) => u.username), names.slice(0, 20), 'alphabetical: the first 20');

    const exact = await search(`${prefix}07`);
    t.same(exact.json.map((u: { username: string }) => u.username), [`${prefix}07`], 'prefix narrows');

    const upper = await search(`${prefix}0`.toUpperCase());
    t.equal(upper.json.length, 10, 'case-insensitive: S…0 finds …00-…09');
    const caps = await search(`${prefix}caps`);
    t.equal(caps.json.length, 1, 'finds a name stored with capitals');

    const underscore = await search(`${prefix}_`);
    t.same(underscore.json.map((u: { username: string }) => u.username), [`${prefix}_under`], '_ is literal, not any character');
    t.same((await search(`${prefix}%`)).json, [], '% is literal, not a wildcard');
    t.same((await search('%')).json, [], 'a lone % matches nothing');
    const lone = await search('_');
    t.ok(lone.json.every((u: { username: string }) => u.username.startsWith('_')), 'a lone _ finds only names starting with _');
    t.same((await search('\\')).json, [], 'a backslash matches nothing and breaks nothing');
    t.same((await search(`${prefix}zzz-nope`)).json, [], 'no match: empty array');
    t.equal((await search(`  ${prefix}07  `)).json.length, 1, 'surrounding spaces are trimmed');

    const everyone = await api('GET', '/api/users/', { token: alice.token });
    t.equal(everyone.status, 200, 'no search: still a list');
    t.ok(everyone.json.length <= 20, 'still at most 20');
    t.equal((await api('GET', '/api/users/?search=', { token: alice.token })).status, 200, 'empty search');

    expectError(t, await search('a\u0000b'), 400, /search/, 'NUL in search');
    expectError(t, await search('x'.repeat(33)), 400, /search/, 'search longer than any username');
    expectError(t, await api('GET', '/api/users/?search=a&search=b', { token: alice.token }), 400, /search/, 'two searches');
  });
}
