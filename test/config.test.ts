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
