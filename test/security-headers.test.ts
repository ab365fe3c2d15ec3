/** helmet's headers everywhere (without breaking /docs or the attachments' own CSP), and CORS from CORS_ORIGIN. */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { corsOrigins } from '../src/http/security.js';
import { createStorage } from '../src/storage/factory.js';
import { buildTestApp, tempDir, testDatabase } from './helpers/app.js';

t.test('security headers on API responses, and a CSP the Swagger UI works under', async (t) => {
  const { database } = await testDatabase(t, 'pglite');
  const app = await buildTestApp(t, { database, bus: createMemoryBus() });

  for (const url of ['/healthz', '/api/users/me/', '/docs/']) {
    const response = await app.inject({ method: 'GET', url });
    t.equal(response.headers['x-content-type-options'], 'nosniff', `${url}: nosniff`);
    t.equal(response.headers['x-frame-options'], 'SAMEORIGIN', `${url}: frame options`);
    t.match(response.headers['strict-transport-security'], /max-age=\d+/, `${url}: HSTS`);
    t.equal(response.headers['cross-origin-resource-policy'], 'same-origin', `${url}: same-origin resources without CORS_ORIGIN`);
    const csp = String(response.headers['content-security-policy']);
    t.match(csp, /default-src 'self'/, `${url}: CSP`);
    t.notMatch(csp, /upgrade-insecure-requests/, `${url}: no upgrade-insecure-requests (plain-HTTP deployments)`);
  }

  // The UI page loads only same-origin scripts and styles, which the CSP allows.
  const page = await app.inject({ method: 'GET', url: '/docs/' });
  t.equal(page.statusCode, 200, '/docs/ is served');
  t.match(page.headers['content-security-policy'], /script-src 'self'/);
  const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
  t.ok(assets.length >= 3, `the page refers to ${assets.length} assets`);
  t.notOk(assets.some((asset) => /^(https?:)?\/\//.test(asset)), 'none of them on another origin');
  t.notMatch(page.body, /<script>(?!\s*<\/script>)/, 'no inline script');
  for (const asset of assets) {
    const response = await app.inject({ method: 'GET', url: new URL(asset, 'http://chat.test/docs/').pathname });
    t.equal(response.statusCode, 200, `${asset} is served`);
  }
  t.equal((await app.inject({ method: 'GET', url: '/docs/json' })).statusCode, 200, 'the spec is served');

  // Attachment bytes keep their stricter policy.
  const media = await app.inject({ method: 'GET', url: '/media/attachments/1/x.html' });
  t.equal(media.headers['content-security-policy'], "default-src 'none'; sandbox", 'media keeps its sandboxing CSP');
});

t.test('no CORS headers when CORS_ORIGIN is unset', async (t) => {
  const { database } = await testDatabase(t, 'pglite');
  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  const response = await app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://evil.example' } });
  t.equal(response.headers['access-control-allow-origin'], undefined);
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/api/users/me/',
    headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
  });
  t.equal(preflight.headers['access-control-allow-origin'], undefined, 'preflight not granted');
});

t.test('CORS for the listed origins only', async (t) => {
  t.same(corsOrigins(' https://a.example/, ,https://b.example:8443 '), ['https://a.example', 'https://b.example:8443'], 'list parsed');
  const { database } = await testDatabase(t, 'pglite');
  const app = await buildTestApp(t, { database, bus: createMemoryBus(), env: { CORS_ORIGIN: 'https://a.example,https://b.example:8443' } });

  const allowed = await app.inject({ method: 'GET', url: '/api/users/me/', headers: { origin: 'https://b.example:8443' } });
  t.equal(allowed.headers['access-control-allow-origin'], 'https://b.example:8443', 'a listed origin is allowed (even on an error)');
  t.match(allowed.headers['access-control-expose-headers'], /x-request-id/, 'x-request-id readable');
  t.match(allowed.headers['access-control-expose-headers'], /link/, 'pagination Link readable');
  t.match(allowed.headers['access-control-expose-headers'], /retry-after/, 'Retry-After readable');
  t.match(allowed.headers.vary, /origin/i, 'Vary: Origin');
  t.equal(allowed.headers['access-control-allow-credentials'], undefined, 'no credentials: bearer tokens, not cookies');
  t.equal(allowed.headers['cross-origin-resource-policy'], 'cross-origin', 'attachments embeddable by the listed web clients');

  const other = await app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://evil.example' } });
  t.equal(other.headers['access-control-allow-origin'], undefined, 'another origin is not');

  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/api/conversations/1/messages/',
    headers: { origin: 'https://a.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
  });
  t.equal(preflight.statusCode, 204, 'preflight answered');
  t.equal(preflight.headers['access-control-allow-origin'], 'https://a.example');
  t.match(preflight.headers['access-control-allow-methods'], /POST/);
  t.match(preflight.headers['access-control-allow-headers'], /authorization/);
});

t.test('S3_SERVE_MODE=redirect: the CSP allows the bucket origin the presigned URLs point at', async (t) => {
  const { database } = await testDatabase(t, 'pglite');
  const cases: Array<{ env: Record<string, string>; label: string }> = [
    { label: 'AWS, virtual-hosted', env: { S3_BUCKET: 'chat-attachments', S3_REGION: 'eu-central-1' } },
    { label: 'AWS, path-style', env: { S3_BUCKET: 'chat-attachments', S3_REGION: 'eu-central-1', S3_FORCE_PATH_STYLE: 'true' } },
    { label: 'AWS, a dotted bucket', env: { S3_BUCKET: 'chat.attachments', S3_REGION: 'us-east-1' } },
    { label: 'MinIO, path-style', env: { S3_BUCKET: 'chat-attachments', S3_ENDPOINT: 'http://minio.example:9000', S3_FORCE_PATH_STYLE: 'true' } },
    { label: 'R2, virtual-hosted', env: { S3_BUCKET: 'chat-attachments', S3_REGION: 'auto', S3_ENDPOINT: 'https://acct.r2.cloudflarestorage.com' } },
  ];
  for (const { env, label } of cases) {
    // The origin as the SDK itself presigns it (offline: static credentials).
    const client = new S3Client({
      region: env.S3_REGION ?? 'us-east-1',
      forcePathStyle: env.S3_FORCE_PATH_STYLE === 'true',
      ...(env.S3_ENDPOINT ? { endpoint: env.S3_ENDPOINT } : {}),
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    const origin = new URL(await getSignedUrl(client, new GetObjectCommand({ Bucket: env.S3_BUCKET, Key: 'a/b.png' }), { expiresIn: 60 })).origin;
    const storage = createStorage({ kind: 'local', local: { dir: tempDir(t) } });
    const redirecting = await buildTestApp(t, { database, bus: createMemoryBus(), storage, env: { ...env, S3_SERVE_MODE: 'redirect' } });
    const csp = directives(String((await redirecting.inject({ method: 'GET', url: '/healthz' })).headers['content-security-policy']));
    for (const name of ['img-src', 'media-src', 'connect-src']) t.ok(csp[name]?.includes(origin), `${label}: ${name} allows ${origin}`);
    t.ok(csp['connect-src']?.includes("'self'"), `${label}: connect-src keeps 'self'`);

    const proxying = await buildTestApp(t, { database, bus: createMemoryBus(), storage, env: { ...env, S3_SERVE_MODE: 'proxy' } });
    const strict = directives(String((await proxying.inject({ method: 'GET', url: '/healthz' })).headers['content-security-policy']));
    t.notOk(Object.values(strict).flat().includes(origin), `${label}, proxy mode: the bucket is not allowed`);
  }
});

/** A CSP header as its directives and their sources. */
function directives(csp: string): Record<string, string[]> {
  return Object.fromEntries(csp.split(';').map((part) => part.trim().split(/\s+/)).filter((words) => words[0]).map(([name = '', ...sources]) => [name, sources]));
}
