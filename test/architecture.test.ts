/**
 * The import rules of the README's architecture section, checked on the sources: imports run
 * one way (routes and sockets → domain → infrastructure), the contract depends on nothing of
 * the service, only the backends touch their drivers, no module imports itself back, and the
 * client package (packages/client) stands alone: the web client reaches it by its name only,
 * the service not at all.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');
const CLIENT = join(ROOT, 'packages', 'client', 'src');
const CLIENT_PACKAGE = '@chat-service/client';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

interface Imports {
  /** Other source files, relative to src/ (`messages/write-path.ts`). */
  local: string[];
  /** Package names (`fastify`, `@aws-sdk/client-s3`); node: built-ins left out. */
  packages: string[];
}

const IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm;

function importsOf(file: string): Imports {
  const text = readFileSync(file, 'utf8');
  const local: string[] = [];
  const packages: string[] = [];
  for (const match of text.matchAll(IMPORT)) {
    const spec = match[1] ?? match[2]!;
    if (spec.startsWith('.')) local.push(relative(SRC, resolve(dirname(file), spec)).replace(/\.js$/, '.ts'));
    else if (!spec.startsWith('node:')) packages.push(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
  }
  return { local, packages };
}

const graph = new Map(sourceFiles(SRC).map((file) => [relative(SRC, file), importsOf(file)]));
/** The client package's sources (generated ones included once built), keyed relative to src/ too (`../packages/client/src/rest.ts`). */
const clientFiles = sourceFiles(CLIENT).map((file) => [relative(SRC, file), importsOf(file)] as const);
const inClient = (file: string) => resolve(SRC, file).startsWith(CLIENT + '/');
const folder = (file: string) => file.split('/')[0]!;

/** Files of a folder, and what each imports, for the rules below. */
const filesIn = (...folders: string[]) => [...graph].filter(([file]) => folders.includes(folder(file)));

const INFRASTRUCTURE = ['db', 'bus', 'storage', 'redis', 'ratelimit', 'sessions'];
const FEATURES = ['messages', 'conversations', 'attachments', 'notifications', 'users', 'auth', 'presence'];
const ENTRY_POINTS = ['http', 'realtime', 'health', 'metrics', 'tracing'];
/** HTTP and socket entry points inside feature folders: they may use Fastify and http/. */
const isEntryFile = (file: string) => /(^|\/)(routes|[\w-]+-routes|plugin)\.ts$/.test(file);

t.test('every local import resolves to a source file', async (t) => {
  const missing = [...graph].flatMap(([file, { local }]) => local.filter((target) => !graph.has(target)).map((target) => `${file} → ${target}`));
  t.same(missing, []);
});

t.test('no import cycle', async (t) => {
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (file: string, path: string[]): void => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(file)), file].join(' → '));
      return;
    }
    state.set(file, 'visiting');
    for (const next of graph.get(file)?.local ?? []) visit(next, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  t.same(cycles, []);
});

t.test('the contract depends on TypeBox and itself only', async (t) => {
  for (const [file, { local, packages }] of filesIn('contract')) {
    t.same(local.filter((target) => folder(target) !== 'contract'), [], `${file}: local imports`);
    t.same(packages.filter((name) => name !== 'typebox'), [], `${file}: packages`);
  }
});

t.test('the client package imports nothing outside itself: no service code, no package', async (t) => {
  t.ok(clientFiles.length > 0, 'packages/client/src has sources');
  const known = new Set(clientFiles.map(([file]) => file));
  for (const [file, { local, packages }] of clientFiles) {
    t.same(local.filter((target) => !inClient(target) || !known.has(target)), [], `${file}: local imports`);
    t.same(packages, [], `${file}: packages`);
  }
});

t.test('the web client sees only itself and the client package, by its name', async (t) => {
  for (const [file, { local, packages }] of filesIn('web')) {
    t.same(local.filter((target) => folder(target) !== 'web'), [], `${file}: local imports`);
    t.same(packages.filter((name) => name !== CLIENT_PACKAGE), [], `${file}: packages`);
  }
});

t.test('the service does not import the client package', async (t) => {
  for (const [file, { local, packages }] of graph) {
    if (folder(file) === 'web') continue;
    t.same(local.filter((target) => target.startsWith('..')), [], `${file}: local imports outside src/`);
    t.notOk(packages.includes(CLIENT_PACKAGE), `${file}: no ${CLIENT_PACKAGE}`);
  }
});

t.test('infrastructure imports no feature, route or socket code, and no Fastify', async (t) => {
  for (const [file, { local, packages }] of filesIn(...INFRASTRUCTURE)) {
    if (isEntryFile(file)) continue;
    t.same(local.filter((target) => [...FEATURES, ...ENTRY_POINTS].includes(folder(target))), [], `${file}: local imports`);
    t.same(packages.filter((name) => name === 'fastify' || name.startsWith('@fastify/')), [], `${file}: packages`);
  }
});

t.test('the domain imports no HTTP or socket code, and no Fastify', async (t) => {
  for (const [file, { local, packages }] of filesIn(...FEATURES, 'domain')) {
    if (isEntryFile(file)) continue;
    t.same(local.filter((target) => ENTRY_POINTS.includes(folder(target)) || isEntryFile(target)), [], `${file}: local imports`);
    t.same(packages.filter((name) => name === 'fastify' || name.startsWith('@fastify/')), [], `${file}: packages`);
  }
});

t.test('only the backends import their drivers', async (t) => {
  const drivers: Record<string, string[]> = {
    ioredis: ['bus', 'ratelimit', 'sessions'],
    postgres: ['db'],
    '@electric-sql/pglite': ['db'],
    '@aws-sdk/client-s3': ['storage'],
    '@aws-sdk/lib-storage': ['storage'],
    '@aws-sdk/s3-request-presigner': ['storage'],
  };
  for (const [file, { packages }] of graph) {
    for (const name of packages) {
      const allowed = drivers[name];
      if (allowed) t.ok(allowed.includes(folder(file)), `${file} may import ${name}`);
    }
  }
});
