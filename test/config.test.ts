import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError, ConfigSchema, configNames, loadConfig } from '../src/config.js';

const dataDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

t.test('defaults need no configuration at all', async (t) => {
  const config = loadConfig({ DATA_DIR: dataDir() });
  t.equal(config.PORT, 3000);
  t.equal(config.HOST, '0.0.0.0');
  t.equal(config.DATABASE_URL, undefined);
  t.equal(config.REDIS_URL, undefined);
  t.equal(config.PUBLIC_URL, 'http://localhost:3000');
  t.equal(config.MAX_MESSAGE_LENGTH, 4000);
  t.equal(config.MAX_ATTACHMENT_BYTES, 25 * 1024 * 1024);
});

t.test('outside production a missing JWT_SECRET is generated once and kept', async (t) => {
  const dir = dataDir();
  const first = loadConfig({ DATA_DIR: dir });
  t.ok(first.JWT_SECRET.length >= 32);
  t.ok(existsSync(join(dir, 'jwt-secret')));
  t.equal(loadConfig({ DATA_DIR: dir }).JWT_SECRET, first.JWT_SECRET, 'same secret after a restart');
  t.equal(readFileSync(join(dir, 'jwt-secret'), 'utf8'), first.JWT_SECRET);
});

t.test('production without JWT_SECRET stops start-up, naming the variable', async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: 'production', DATA_DIR: dataDir() }), { name: 'ConfigError', message: /JWT_SECRET/ });
});

t.test('each bad value is reported with its variable name', async (t) => {
  const cases: Record<string, string> = {
    PORT: 'eighty',
    MAX_MESSAGE_LENGTH: '0',
    DATABASE_URL: 'mysql://x',
    REDIS_URL: 'http://x',
    LOG_LEVEL: 'loud',
    NODE_ENV: 'staging',
    S3_FORCE_PATH_STYLE: 'maybe',
    JWT_SECRET: 'short',
    MESSAGE_RATE_LIMIT: '-1',
  };
  for (const [name, value] of Object.entries(cases)) {
    try {
      loadConfig({ DATA_DIR: dataDir(), [name]: value });
      t.fail(`${name}=${value} accepted`);
    } catch (error) {
      t.ok(error instanceof ConfigError, `${name}: ConfigError`);
      t.match((error as Error).message, new RegExp(`${name}: `), `${name} named in: ${(error as Error).message}`);
    }
  }
});

t.test('typed values are converted', async (t) => {
  const config = loadConfig({ DATA_DIR: dataDir(), PORT: '8080', S3_FORCE_PATH_STYLE: 'true', MESSAGE_RATE_LIMIT: '0', PUBLIC_URL: 'https://chat.example/' });
  t.equal(config.PORT, 8080);
  t.equal(config.S3_FORCE_PATH_STYLE, true);
  t.equal(config.MESSAGE_RATE_LIMIT, 0);
  t.equal(config.PUBLIC_URL, 'https://chat.example', 'trailing slash dropped');
});

t.test('the README documents every variable with its default', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const name of configNames()) {
    const row = readme.split('\n').find((line) => line.startsWith(`| \`${name}\` |`));
    t.ok(row, `${name} has a README row`);
    const fallback = (ConfigSchema.properties as Record<string, { default?: unknown }>)[name]?.default;
    if (row && fallback !== undefined) t.match(row, `\`${String(fallback)}\``, `${name} default documented`);
  }
});

t.test('issue 12: limits have defaults, TRUST_PROXY takes hops or addresses, API_DOCS a boolean', async (t) => {
  const config = loadConfig({ DATA_DIR: dataDir() });
  t.equal(config.TRUST_PROXY, undefined, 'nobody trusted by default');
  t.equal(config.API_DOCS, true);
  t.equal(config.MAX_SOCKETS_PER_USER, 20);
  t.equal(config.EDIT_RATE_LIMIT, 60);
  t.equal(config.USER_SEARCH_MIN_PREFIX, 1);
  t.equal(loadConfig({ DATA_DIR: dataDir(), TRUST_PROXY: '2' }).TRUST_PROXY, '2');
  t.equal(loadConfig({ DATA_DIR: dataDir(), TRUST_PROXY: '10.0.0.0/8, ::1' }).TRUST_PROXY, '10.0.0.0/8, ::1');
  t.equal(loadConfig({ DATA_DIR: dataDir(), API_DOCS: 'false' }).API_DOCS, false);
  for (const [name, value] of [['TRUST_PROXY', 'everyone'], ['API_DOCS', 'maybe'], ['MAX_SOCKETS_PER_USER', '-1']] as const) {
    t.throws(() => loadConfig({ DATA_DIR: dataDir(), [name]: value }), { name: 'ConfigError', message: new RegExp(`${name}: `) }, `${name}=${value}`);
  }
});

t.test('issue 11: Redis Sentinel, with the master name, never with a cluster; REDIS_URL optional then', async (t) => {
  const config = loadConfig({ DATA_DIR: dataDir(), REDIS_SENTINELS: 'sentinel-0:26379, 10.0.0.2:26380,[::1]:26381', REDIS_SENTINEL_NAME: 'chat-primary' });
  t.same(config.redisSentinels, [
    { host: 'sentinel-0', port: 26379 },
    { host: '10.0.0.2', port: 26380 },
    { host: '::1', port: 26381 },
  ]);
  t.equal(config.REDIS_URL, 'redis://chat-primary', 'Redis is on (the URL stands in for the primary Sentinel names)');
  const withUrl = loadConfig({ DATA_DIR: dataDir(), REDIS_URL: 'rediss://:secret@ignored:6380/2', REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'm' });
  t.equal(withUrl.REDIS_URL, 'rediss://:secret@ignored:6380/2', 'a REDIS_URL of its own carries credentials, TLS, database');
  t.equal(loadConfig({ DATA_DIR: dataDir() }).redisSentinels, undefined, 'no Sentinel by default');
  t.equal(loadConfig({ DATA_DIR: dataDir() }).REDIS_COMMAND_TIMEOUT_MS, 5000);

  const bad: [Record<string, string>, RegExp][] = [
    [{ REDIS_SENTINELS: 'a:1' }, /^REDIS_SENTINELS: needs REDIS_SENTINEL_NAME/],
    [{ REDIS_SENTINEL_NAME: 'm' }, /^REDIS_SENTINEL_NAME: needs REDIS_SENTINELS/],
    [{ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'm', REDIS_URL: 'redis://x', REDIS_CLUSTER: 'true' }, /^REDIS_SENTINELS: not with REDIS_CLUSTER/],
    [{ REDIS_SENTINELS: 'a:70000', REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINELS: port 70000 of a/],
    [{ REDIS_SENTINELS: 'a:0', REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINELS: port 0 of a/],
    [{ REDIS_SENTINELS: 'sentinel-0', REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINELS: .*"sentinel-0"/],
    [{ REDIS_SENTINELS: 'a:1,,b:2', REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINELS: /],
    [{ REDIS_SENTINELS: 'redis://a:1', REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINELS: /],
    [{ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'my master' }, /REDIS_SENTINEL_NAME: /],
    [{ REDIS_COMMAND_TIMEOUT_MS: '10' }, /REDIS_COMMAND_TIMEOUT_MS: /],
  ];
  for (const [env, message] of bad) {
    t.throws(() => loadConfig({ DATA_DIR: dataDir(), ...env }), { name: 'ConfigError', message }, JSON.stringify(env));
  }
});

t.test('issue 11: the PostgreSQL response timeout outlasts the statement timeout', async (t) => {
  t.equal(loadConfig({ DATA_DIR: dataDir() }).DATABASE_RESPONSE_TIMEOUT_MS, 20000);
  t.equal(loadConfig({ DATA_DIR: dataDir(), DATABASE_STATEMENT_TIMEOUT_MS: '0', DATABASE_RESPONSE_TIMEOUT_MS: '1000' }).DATABASE_RESPONSE_TIMEOUT_MS, 1000);
  t.equal(loadConfig({ DATA_DIR: dataDir(), DATABASE_RESPONSE_TIMEOUT_MS: '0' }).DATABASE_RESPONSE_TIMEOUT_MS, 0, '0 turns it off');
  t.throws(
    () => loadConfig({ DATA_DIR: dataDir(), DATABASE_STATEMENT_TIMEOUT_MS: '15000', DATABASE_RESPONSE_TIMEOUT_MS: '15000' }),
    { name: 'ConfigError', message: /^DATABASE_RESPONSE_TIMEOUT_MS: must be above DATABASE_STATEMENT_TIMEOUT_MS \(15000\)/ },
  );
  t.throws(() => loadConfig({ DATA_DIR: dataDir(), DATABASE_RESPONSE_TIMEOUT_MS: 'soon' }), { name: 'ConfigError', message: /DATABASE_RESPONSE_TIMEOUT_MS: / });
});
