/**
 * The image: deploy/Dockerfile's stages, base images, copies, user, variables and health check,
 * and the build it runs (the bundling steps of `npm run build`, run on what the build stage copies).
 */
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import type { Test } from 'tap';
import { loadConfig } from '../../src/config.js';
import { tempDir } from '../helpers/app.js';
import { known, pkg, type DeployContext } from '../helpers/deploy-context.js';
import { copyParts, dockerIgnored, execForm, exists, read } from '../helpers/deploy-files.js';

export function deployImageSuite(t: Test, context: DeployContext): void {
  const { image, build, built, buildScripts, serves, healthcheckWorks } = context;

  t.test('Dockerfile: multi-stage build, production dependencies, compiled JS, non-root', async (t) => {
    const { steps, stages, runtime, env } = image;
    t.ok(stages.length >= 2, 'at least a build and a runtime stage');
    const args = Object.fromEntries(
      steps.filter((s) => s.keyword === 'ARG' && s.args.includes('=')).map((s) => s.args.split('=') as [string, string]),
    );
    const engine = /\d+/.exec(pkg.engines.node)?.[0];
    t.equal(engine, '24', `package.json engines.node ${pkg.engines.node}: Node 24`);
    for (const from of stages) {
      const name = from.args.split(/\s+/)[0]?.replace(/^\$\{(\w+)\}$/, (_m, arg: string) => args[arg] ?? '') ?? '';
      const [repository, tag = ''] = name.split(':');
      t.equal(repository, 'node', `base image ${name} is node`);
      t.equal(/^\d+/.exec(tag)?.[0], engine, `base image ${name}: the Node major of package.json engines`);
      t.match(tag, /bookworm-slim|alpine/, `base image ${name}: slim or alpine`);
    }
    const buildRuns = steps.filter((s) => s.stage < runtime && s.keyword === 'RUN').map((s) => s.args).join('\n');
    t.match(buildRuns, /\bnpm ci\b/, 'build stage: npm ci');
    t.match(buildRuns, /\bnpm run build\b/, 'build stage: npm run build');
    const runtimeRuns = image.args(runtime, 'RUN');
    t.ok(runtimeRuns.some((r) => /\bnpm ci\b.*--omit=dev/.test(r)), 'runtime stage: npm ci --omit=dev');
    t.notOk(runtimeRuns.some((r) => /npm run build|\btsc\b|tsx/.test(r)), 'runtime stage compiles nothing');

    const copies = image.args(runtime, 'COPY').map(copyParts);
    t.ok(copies.some((c) => c.from && c.sources.some((source) => /\/dist\/?$/.test(source))), 'dist/ from the build stage');
    for (const path of ['drizzle', 'scripts/start.mjs', 'package.json', 'package-lock.json']) {
      t.ok(copies.some((c) => c.sources.some((source) => source === path || source === `${path}/`)), `copies ${path}`);
    }
    // What the build context holds: in the repository, and not dropped by .dockerignore.
    const ignored = read('.dockerignore').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
    for (const copy of steps.filter((s) => s.keyword === 'COPY').map((s) => copyParts(s.args)).filter((c) => !c.from)) {
      for (const source of copy.sources) {
        t.ok(exists(source), `COPY source ${source} exists`);
        t.notOk(dockerIgnored(source, ignored), `COPY source ${source} is not excluded by .dockerignore`);
      }
    }

    t.equal(env.NODE_ENV, 'production', 'NODE_ENV=production');
    for (const name of Object.keys(env).filter((n) => n !== 'NODE_OPTIONS')) t.ok(known.has(name), `ENV ${name} is a config variable`);
    // NODE_OPTIONS is Node's own variable, not the service's: Node must accept it.
    const node = spawnSync(process.execPath, ['-e', ''], { env: { NODE_OPTIONS: env.NODE_OPTIONS ?? '' }, encoding: 'utf8' });
    t.equal(node.status, 0, `Node accepts NODE_OPTIONS=${env.NODE_OPTIONS} (${node.stderr.trim()})`);
    const heapFlag = /--max-semi-space-size=(\d+)/.exec(env.NODE_OPTIONS ?? '')?.[0];
    t.ok(heapFlag, 'NODE_OPTIONS sizes the young generation');
    t.ok(heapFlag && pkg.scripts.start?.includes(heapFlag), 'as npm start does');
    t.throws(() => loadConfig(env), /JWT_SECRET/, 'the image alone refuses to start without JWT_SECRET');
    t.equal(loadConfig({ ...env, JWT_SECRET: 'image-test-secret-0123456789' }).NODE_ENV, 'production', 'its ENV values load');

    const user = image.args(runtime, 'USER').at(-1) ?? 'root';
    t.notMatch(user, /^(root|0)(:|$)/, `runs as ${user}, not root`);
    t.ok(runtimeRuns.some((r) => new RegExp(`mkdir -p ${env.DATA_DIR}\\b.*chown (-R )?${user} ${env.DATA_DIR}\\b`).test(r)), `DATA_DIR ${env.DATA_DIR} exists and belongs to ${user}`);
    const expose = image.args(runtime, 'EXPOSE')[0];
    t.equal(Number(expose), Number(env.PORT ?? 3000), 'EXPOSE is the PORT');
    t.equal(Number(expose), loadConfig({ DATA_DIR: tempDir(t) }).PORT, 'and the default PORT');

    const healthcheck = image.args(runtime, 'HEALTHCHECK').at(-1) ?? '';
    const probe = execForm(healthcheck.slice(healthcheck.indexOf('CMD ') + 'CMD '.length));
    t.match(probe.join(' '), /^node -e .*fetch\(.*\/healthz/, 'HEALTHCHECK: node fetch of /healthz');
    await serves(t, '/healthz', 'HEALTHCHECK');
    await healthcheckWorks(t, probe, 'HEALTHCHECK on PORT', (to) => ({ PORT: String(to) }));

    const cmd = execForm(image.args(runtime, 'CMD').at(-1) ?? '[]');
    t.same(cmd, ['node', 'dist/server.js'], 'CMD runs the compiled server');
    t.ok(image.builtFiles.has(image.script(cmd) ?? ''), `CMD runs ${image.script(cmd)}, which the build writes and the runtime stage copies`);
    t.notOk(steps.some((s) => s.stage === runtime && s.keyword === 'ENTRYPOINT'), 'no ENTRYPOINT wrapping it');
  });

  t.test('the image runs what `npm run build` produces', async (t) => {
    const tsconfig = JSON.parse(read('tsconfig.json')) as { compilerOptions: { outDir: string; rootDir: string } };
    t.match(
      pkg.scripts.build,
      /^npm run build -w @chat-service\/client && tsc -p tsconfig\.json && node scripts\/build-server\.mjs && node scripts\/build-web\.mjs$/,
      'build is the client package (the web client bundles it), tsc, then the server and web client bundles',
    );
    const copied = image.args(image.buildStage, 'COPY').flatMap((args) => copyParts(args).sources);
    t.ok(buildScripts.length >= 2, 'the build runs its bundling scripts');
    t.same(build.errors, [], 'they run on what the build stage copies');
    for (const input of ['tsconfig.json', 'src', ...buildScripts]) t.ok(copied.includes(input), `the build stage has ${input}`);
    const client = JSON.parse(read('packages/client/package.json')) as { scripts: Record<string, string> };
    const clientInputs = ['package.json', 'tsconfig.json', 'src', ...[...(client.scripts.build ?? '').matchAll(/node (scripts\/\S+\.mjs)/g)].map((m) => m[1] ?? '')];
    const clientCopied = (path: string) => copied.includes(path) || copied.includes(dirname(path));
    for (const input of clientInputs) t.ok(clientCopied(`packages/client/${input}`), `the build stage has packages/client/${input} (its build)`);
    const beforeInstall = (stage: number) => {
      const install = image.steps.findIndex((s) => s.stage === stage && s.keyword === 'RUN' && /\bnpm ci\b/.test(s.args));
      return image.steps.slice(0, install).filter((s) => s.stage === stage && s.keyword === 'COPY').flatMap((s) => copyParts(s.args).sources);
    };
    for (const stage of [image.buildStage, image.runtime]) {
      t.ok(beforeInstall(stage).includes('packages/client/package.json'), `stage ${stage}: the workspace's package.json before npm ci (the lock names it)`);
    }
    t.equal(tsconfig.compilerOptions.rootDir, 'src');
    t.equal(tsconfig.compilerOptions.outDir, 'dist');
    for (const entry of ['server', 'migrate']) {
      t.ok(exists(`src/${entry}.ts`), `src/${entry}.ts compiles to dist/${entry}.js`);
      if (exists('dist')) t.ok(exists(`dist/${entry}.js`), `dist/${entry}.js is there after the build`);
      t.ok(built.some((file) => file.path === `dist/${entry}.js`), `scripts/build-server.mjs writes dist/${entry}.js`);
    }
    t.ok(built.some((file) => file.path === 'dist/web/index.html'), 'scripts/build-web.mjs writes the web client, dist/web/index.html');
    t.ok(image.builtFiles.has(`${image.workdir(image.runtime)}/dist/web/index.html`), 'which the image has: the service serves it at /');
    // The runtime stage installs production dependencies only: the bundles may import nothing else.
    for (const file of built.filter((file) => /^dist\/[^/]+\.js$/.test(file.path))) {
      t.ok(file.packages.length > 0, `${file.path} leaves its dependencies to node_modules`);
      t.same(file.packages.filter((name) => !(name in pkg.dependencies)), [], `${file.path} imports production dependencies only`);
    }
    const start = read('scripts/start.mjs');
    t.match(start, /dist\/server\.js/, 'npm start runs dist/server.js too');
    t.match(start, /dist\/web\/index\.html/, 'and builds when the web client is missing');
    t.match(start, /dist\/migrate\.js/, 'npm run migrate runs dist/migrate.js too');
    t.match(pkg.scripts.start, /\bscripts\/start\.mjs\b/, 'npm start is scripts/start.mjs');
    t.match(pkg.scripts.migrate, /\bscripts\/start\.mjs --migrate\b/, 'npm run migrate is scripts/start.mjs --migrate');

    const buildRuns = image.steps.filter((s) => s.keyword === 'RUN').map((s) => s.args).join('\n');
    t.match(buildRuns, /npm ci\b/, 'the image installs from the lock file (npm ci)');
    t.match(buildRuns, /npm run build\b/, 'and builds dist/ as npm start would');

    const ignored = read('.dockerignore').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
    for (const path of ['node_modules', 'dist', '.git', '.env']) t.ok(ignored.includes(path), `.dockerignore: ${path}`);
    for (const path of ['src', 'drizzle', 'scripts', 'package.json', 'package-lock.json', 'tsconfig.json']) {
      t.notOk(ignored.some((pattern) => pattern === path || pattern === `${path}/` || pattern === '*'), `.dockerignore keeps ${path}`);
    }
  });
}
