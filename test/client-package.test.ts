/**
 * The client package as a front-end developer gets it: `npm pack` of packages/client, the
 * tarball installed into an empty folder (no workspace, no TypeBox, nothing else), then
 * (1) plain Node (no tsx, no loader) imports it by its name and chats with a running replica,
 * and (2) the project's tsc, strict and without skipLibCheck, type-checks a consumer against
 * the installed declarations, resolved as Node does and as bundlers do.
 *
 * It packs what `npm run build` left in packages/client/dist (`--ignore-scripts`: the package's
 * prepack would rebuild dist under the other client tests running at the same time).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { tempDir } from './helpers/app.js';
import { randomName } from './helpers/api.js';
import { ROOT, startTopology } from './helpers/replicas.js';

const run = promisify(execFile);
const PACKAGE = join(ROOT, 'packages', 'client');
const NAME = '@chat-service/client';
/** Bounds every child (npm, node, tsc): a hung one fails the test instead of hanging it. */
const CHILD_TIMEOUT_MS = 120_000;

/** The environment minus tap's and tsx's hooks, so children run as they would for a user. */
function plainEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name === 'NODE_OPTIONS' || /^_?TAP/i.test(name) || /^npm_/i.test(name)) continue;
    env[name] = value;
  }
  return env;
}

async function sh(file: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(file, args, { cwd, env: plainEnv(), timeout: CHILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}:\n${stdout ?? ''}\n${stderr ?? ''}\n${String(error)}`);
  }
}

/**
 * References of a package's built files that leave it or point at nothing: imports of its
 * .js and .d.ts files (only relative ones allowed: it has no dependencies) and the sources of
 * its source maps.
 */
function outsideReferences(root: string): string[] {
  const dist = join(root, 'dist');
  const problems: string[] = [];
  const check = (from: string, target: string, what: string) => {
    const path = resolve(dirname(from), target);
    if (!path.startsWith(root + '/') || !existsSync(path)) problems.push(`${relative(root, from)}: ${what} ${target}`);
  };
  for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = join(entry.parentPath, entry.name);
    const text = readFileSync(file, 'utf8');
    if (entry.name.endsWith('.map')) {
      for (const source of (JSON.parse(text) as { sources: string[] }).sources) check(file, source, 'source');
    } else if (/\.(d\.ts|js)$/.test(entry.name)) {
      for (const [, specifier = ''] of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm)) {
        if (specifier.startsWith('.')) check(file, specifier, 'import');
        else problems.push(`${relative(root, file)}: imports the package ${specifier}`);
      }
    }
  }
  return problems;
}

/** What the installed package does against a replica, printed as one JSON line. Plain JavaScript: no tsx. */
const CHAT_SCRIPT = `
import { ApiError, ChatClient, CloseCode } from '${NAME}';

const [baseUrl, name] = process.argv.slice(2);
const password = 'correct horse battery';
const alice = new ChatClient({ baseUrl });
const bob = new ChatClient({ baseUrl });
await alice.register(name + '_a', password);
await bob.register(name + '_b', password);
const conversation = await alice.createConversation([bob.user.id]);

const opened = (socket) => new Promise((resolve) => (socket.state === 'open' ? resolve() : socket.on('state', (s) => s === 'open' && resolve())));
const message = (socket) => new Promise((resolve) => socket.on('event', (e) => e.type === 'chat.message' && resolve(e)));
const mine = alice.chat(conversation.id, { lastSeq: conversation.last_seq });
const theirs = bob.chat(conversation.id, { lastSeq: conversation.last_seq });
const echo = message(mine);
const delivered = message(theirs);
await Promise.all([opened(mine), opened(theirs)]);
const sent = await mine.send('سلام from the tarball');
const [echoed, received] = await Promise.all([echo, delivered]);

let refused;
try {
  await new ChatClient({ baseUrl }).login(name + '_a', 'a wrong password');
} catch (error) {
  refused = error instanceof ApiError ? error.statusCode : String(error);
}
mine.close();
theirs.close();
console.log(JSON.stringify({
  resolved: import.meta.resolve('${NAME}'),
  execArgv: process.execArgv,
  unauthorizedCode: CloseCode.unauthorized,
  sent: { id: sent.id, content: sent.content, sender: sent.sender },
  echoed: { seq: echoed.seq, id: echoed.message.id, content: echoed.message.content },
  received: { seq: received.seq, id: received.message.id, content: received.message.content },
  refused,
}));
`;

/** A strict consumer: wire types narrow by `type`, options and results are typed, misuse does not compile. */
const CONSUMER = `
import { ApiError, ChatClient, CloseCode, FATAL_CLOSE_CODES, type ChatServerEvent, type ConversationView, type MessageView } from '${NAME}';

const client = new ChatClient({ baseUrl: 'http://localhost:3000', onUnauthorized: () => undefined });

export async function quickStart(): Promise<string> {
  await client.login('alice', 'correct horse battery');
  const conversations: ConversationView[] = await client.listConversations();
  const conversation = conversations[0] ?? (await client.createConversation(['bob']));
  const chat = client.chat(conversation.id, { lastSeq: conversation.last_seq });
  chat.on('event', (event) => {
    if (event.type === 'chat.message') {
      const message: MessageView = event.message;
      console.log(message.content.toUpperCase(), message.attachments.map((a) => a.filename));
    } else if (event.type === 'member.removed') {
      console.log(event.by.username);
    }
  });
  chat.on('closed', ({ code }) => console.log(FATAL_CLOSE_CODES.includes(code), code === CloseCode.unauthorized));
  try {
    const sent = await chat.send('hello');
    return sent.content;
  } catch (error) {
    if (error instanceof ApiError) return String(error.statusCode);
    throw error;
  }
}

export function describe(event: ChatServerEvent): string {
  switch (event.type) {
    case 'error':
      return event.code;
    case 'user.typing':
      return event.user;
    default:
      return event.type;
  }
}

// @ts-expect-error conversation ids are numbers
client.chat('1');
// @ts-expect-error a MessageView has no such field
export const nope = (m: MessageView) => m.author;
// @ts-expect-error send takes the content as a string
client.chat(1).send({ content: 'hi' });
`;

t.test('npm pack → install into an empty folder → plain Node chats with a replica, tsc checks a consumer', async (t) => {
  t.ok(existsSync(join(PACKAGE, 'dist', 'index.js')) && existsSync(join(PACKAGE, 'dist', 'index.d.ts')), 'packages/client/dist is built (npm run build)');
  const dir = tempDir(t, 'chat-client-package-');
  const packs = join(dir, 'packs');
  const app = join(dir, 'app');
  mkdirSync(packs);
  mkdirSync(app);

  const { stdout: packed } = await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packs], PACKAGE);
  const [pack] = JSON.parse(packed) as Array<{ name: string; filename: string; files: Array<{ path: string }> }>;
  t.equal(pack?.name, NAME, 'the tarball is the scoped package');
  const files = (pack?.files ?? []).map((file) => file.path);
  for (const path of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/generated/contract.d.ts', 'dist/generated/socket-codes.js']) {
    t.ok(files.includes(path), `the tarball has ${path}`);
  }
  t.same(files.filter((path) => !/^(package\.json|README\.md|dist\/.+|src\/.+\.ts)$/.test(path)), [], 'and nothing else (no scripts, tests or configs)');
  const tarball = join(packs, pack?.filename ?? '');

  // --prefix: the folder itself, even if a parent holds a package.json or node_modules.
  await sh('npm', ['install', '--offline', '--no-audit', '--no-fund', '--prefix', app, tarball], app);
  const installed = join(app, 'node_modules', '@chat-service', 'client');
  t.ok(existsSync(join(installed, 'package.json')), 'installed from the tarball');
  t.equal(realpathSync(installed), installed, 'as a copy, not a link into the repository');
  t.same(readdirSync(join(app, 'node_modules')).filter((name) => !name.startsWith('.')), ['@chat-service'], 'with no dependency at all');
  const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as Record<string, unknown>;
  t.match(manifest, { type: 'module', sideEffects: false, exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } } }, 'an ES module package with types');
  t.same(outsideReferences(installed), [], 'its imports and source maps point at its own files only');

  t.test('plain Node imports it by name and chats with a running replica', async (t) => {
    const topology = await startTopology(t, { backend: 'embedded' });
    const replica = topology.at(0);
    writeFileSync(join(app, 'chat.mjs'), CHAT_SCRIPT);
    const { stdout } = await sh(process.execPath, ['chat.mjs', replica.url, randomName('pkg')], app);
    const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
      resolved: string;
      execArgv: string[];
      unauthorizedCode: number;
      sent: { id: number; content: string; sender: string };
      echoed: { seq: number; id: number; content: string };
      received: { seq: number; id: number; content: string };
      refused: unknown;
    };
    t.equal(new URL(result.resolved).pathname, join(realpathSync(installed), 'dist', 'index.js'), 'the name resolves to the installed copy');
    t.same(result.execArgv, [], 'no loader: plain node');
    t.equal(result.unauthorizedCode, 4401, 'the close codes ship with it');
    t.equal(result.sent.content, 'سلام from the tarball', 'send resolves with the stored message');
    t.same(result.echoed, { seq: result.echoed.seq, id: result.sent.id, content: result.sent.content }, "the sender's socket gets the chat.message echo");
    t.same(result.received, result.echoed, 'the other member receives the same event');
    t.ok(result.echoed.seq >= 1, 'with its seq');
    t.equal(result.refused, 401, 'a wrong password is an ApiError 401');
  });

  t.test('the installed declarations type-check a strict consumer', async (t) => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    writeFileSync(join(app, 'consumer.mts'), CONSUMER);
    const base = { strict: true, noEmit: true, skipLibCheck: false, target: 'ES2022', lib: ['ES2023', 'DOM', 'DOM.Iterable'], types: [], noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true };
    for (const [name, resolution] of [
      ['node', { module: 'NodeNext', moduleResolution: 'NodeNext' }],
      ['bundler', { module: 'ESNext', moduleResolution: 'Bundler' }],
    ] as const) {
      const config = `tsconfig.${name}.json`;
      writeFileSync(join(app, config), JSON.stringify({ compilerOptions: { ...base, ...resolution }, files: ['consumer.mts'] }));
      const { stdout } = await sh(process.execPath, [tsc, '-p', config, '--listFiles'], app);
      const listed = stdout.split('\n').filter(Boolean);
      t.ok(listed.some((file) => file.startsWith(installed + '/dist/') && file.endsWith('index.d.ts')), `${name} resolution: the declarations come from the installed package`);
      t.same(listed.filter((file) => !file.startsWith(app + '/') && !file.includes('/typescript/lib/')), [], `${name} resolution: nothing outside the folder but TypeScript's own lib`);
    }
  });
});
