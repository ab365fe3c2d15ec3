/**
 * Routing and the service's own endpoints: paths without the trailing slash, health,
 * OpenAPI and the docs UI.
 */
import type { Test } from 'tap';
import { randomName, register, type Session } from '../helpers/api.js';
import type { RestContext } from '../helpers/rest-context.js';

export function restRoutesSuite(t: Test, context: RestContext): void {
  const { app, api } = context;

  // ---------------------------------------------------------------------------------------
  t.test('paths without the trailing slash', async (t) => {
    const username = randomName('slash');
    const registered = await api('POST', '/api/auth/register', { body: { username, password: 'password123' } });
    t.equal(registered.status, 201, 'POST /api/auth/register');
    const alice = registered.json as Session;
    const login = await api('POST', '/api/auth/login', { body: { username, password: 'password123' } });
    t.equal(login.status, 200, 'POST /api/auth/login');
    const bob = await register(app);
    t.equal((await api('GET', '/api/users/me', { token: alice.token })).status, 200, 'GET /api/users/me');
    t.equal((await api('GET', `/api/users?search=${username}`, { token: alice.token })).json.length, 1, 'GET /api/users');
    const created = await api('POST', '/api/conversations', { token: alice.token, body: { participants: [bob.user.id] } });
    t.equal(created.status, 201, 'POST /api/conversations');
    const cid = created.json.id;
    t.equal((await api('GET', '/api/conversations', { token: alice.token })).status, 200, 'GET /api/conversations');
    t.equal((await api('GET', `/api/conversations/${cid}`, { token: alice.token })).status, 200, 'GET /api/conversations/{id}');
    const sent = await api('POST', `/api/conversations/${cid}/messages`, { token: alice.token, body: { content: 'no slash' } });
    t.equal(sent.status, 201, 'POST …/messages');
    t.equal((await api('GET', `/api/conversations/${cid}/messages?limit=5`, { token: alice.token })).json.length, 1, 'GET …/messages');
    t.equal((await api('PATCH', `/api/conversations/${cid}/messages/${sent.json.id}`, { token: alice.token, body: { content: 'edited' } })).status, 200, 'PATCH …/{mid}');
    t.equal((await api('DELETE', `/api/conversations/${cid}/messages/${sent.json.id}`, { token: alice.token })).status, 204, 'DELETE …/{mid}');
  });

  // ---------------------------------------------------------------------------------------
  t.test('health, OpenAPI and docs', async (t) => {
    t.equal((await api('GET', '/healthz')).status, 200);
    t.equal((await api('GET', '/readyz')).status, 200);
    const spec = await api('GET', '/openapi.json');
    t.equal(spec.status, 200);
    t.match(spec.json, { openapi: /^3\./, info: { title: String }, paths: Object });
    const expected: [string, string][] = [
      ['/api/auth/register/', 'post'],
      ['/api/auth/login/', 'post'],
      ['/api/users/me/', 'get'],
      ['/api/users/', 'get'],
      ['/api/conversations/', 'get'],
      ['/api/conversations/', 'post'],
      ['/api/conversations/{id}/', 'get'],
      ['/api/conversations/{id}/messages/', 'get'],
      ['/api/conversations/{id}/messages/', 'post'],
      ['/api/conversations/{id}/messages/{mid}/', 'patch'],
      ['/api/conversations/{id}/messages/{mid}/', 'delete'],
    ];
    for (const [path, method] of expected) t.ok(spec.json.paths?.[path]?.[method], `OpenAPI lists ${method.toUpperCase()} ${path}`);

    let docs = await api('GET', '/docs');
    for (let hops = 0; hops < 3 && docs.status >= 300 && docs.status < 400; hops++) {
      docs = await api('GET', new URL(String(docs.headers.location), 'http://localhost/docs/').pathname);
    }
    t.equal(docs.status, 200, '/docs answers');
    t.match(String(docs.headers['content-type']), /text\/html/);
    t.match(docs.body, /swagger/i, 'the Swagger UI');
  });
}
