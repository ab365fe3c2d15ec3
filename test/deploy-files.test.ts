/**
 * The deployment files do what the service needs: every variable they set is one the config
 * schema knows (and the set loads), every probe and health check asks a route the service
 * answers 200 on its PORT, the image runs a file the build really writes on the Node major of
 * package.json, services wait for what they use, and the grace periods outlast the drain. No
 * container engine: the files are parsed, the build's bundling step and the health-check
 * commands are run, and the probe paths are asked of a real app.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { ConfigSchema, loadConfig, type Config } from '../src/config.js';
import { buildTestApp, tempDir, testDatabase } from './helpers/app.js';
import {
  ROOT, buildOutputs, copyParts, dockerfile, dockerIgnored, dockerImage, execForm, exists, haproxyLines, interpolate, interpolated,
  k8sDocuments, kustomizedFiles, read, runHealthcheck, seconds, type Doc,
} from './helpers/deploy-files.js';
import { freePort } from './helpers/ports.js';

/** The variables the service reads: the config schema's keys. Any other name in a manifest is a mistake. */
const known = new Set(Object.keys(ConfigSchema.properties));
const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; engines: { node: string }; dependencies: Record<string, string> };
const REQUIRED_IN_PRODUCTION = ['NODE_ENV', 'JWT_SECRET', 'DATABASE_URL', 'REDIS_URL', 'S3_BUCKET', 'PUBLIC_URL'];
/** What each entry point connects to, by the variable naming it: src/migrate.ts opens only the database. */
const USES: Record<string, string[]> = { 'dist/server.js': ['DATABASE_URL', 'REDIS_URL', 'S3_ENDPOINT'], 'dist/migrate.js': ['DATABASE_URL'] };

/** Loads a manifest's variables as the service would (JWT_SECRET is set: nothing is written). */
const loads = (env: Record<string, string>): Config => {
  if (!env.JWT_SECRET) throw new Error('JWT_SECRET is not set');
  return loadConfig(env);
};

// One app for every probe, listening for the health-check commands; one run of the bundler.
const { database } = await testDatabase(t, 'pglite');
const app = await buildTestApp(t, { database, bus: createMemoryBus() });
await app.listen({ host: '127.0.0.1', port: 0 });
const port = (app.server.address() as AddressInfo).port;
const deadPort = await freePort();
/** The bundling steps of `npm run build` (tsc's own output is replaced by the server bundles). */
const buildScripts = [...(pkg.scripts.build ?? '').matchAll(/node (scripts\/\S+\.mjs)/g)].map((m) => m[1] ?? '');
const build = buildOutputs(t, dockerfile(), buildScripts);
const built = build.files;
const image = dockerImage(built);

async function serves(t: Test, path: string | undefined, label: string, headers: Record<string, string> = {}): Promise<void> {
  const response = await app.inject({ method: 'GET', url: path ?? '/-no-path-', headers });
  t.equal(response.statusCode, 200, `${label}: the service answers GET ${path} with 200`);
}

/** A `node -e` health check with its `127.0.0.1:N` pointed at `to`: exits 0 on the live app, not on a dead port. */
async function healthcheckWorks(t: Test, argv: string[], label: string, env: (port: number) => Record<string, string> = () => ({})): Promise<void> {
  const aimed = (to: number) => argv.map((arg) => arg.replace(/127\.0\.0\.1:\d+/g, `127.0.0.1:${to}`));
  t.equal(await runHealthcheck(aimed(port), env(port)), 0, `${label}: passes against a running service`);
  t.not(await runHealthcheck(aimed(deadPort), env(deadPort)), 0, `${label}: fails when nothing answers`);
}

// ---------------------------------------------------------------------------------------------

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
  t.match(pkg.scripts.build, /^tsc -p tsconfig\.json && node scripts\/build-server\.mjs && node scripts\/build-web\.mjs$/, 'build is tsc, then the server and web client bundles');
  const copied = image.args(image.buildStage, 'COPY').flatMap((args) => copyParts(args).sources);
  t.ok(buildScripts.length >= 2, 'the build runs its bundling scripts');
  t.same(build.errors, [], 'they run on what the build stage copies');
  for (const input of ['tsconfig.json', 'src', ...buildScripts]) t.ok(copied.includes(input), `the build stage has ${input}`);
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

// ---------------------------------------------------------------------------------------------

t.test('docker-compose.yml: the cluster is wired as the service expects', async (t) => {
  const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as Doc;
  const services = compose.services as Record<string, Doc>;
  const { chat, migrate, lb, postgres, redis, minio } = services;
  const mc = services['minio-init'];
  if (!chat || !migrate || !lb || !postgres || !redis || !minio || !mc) throw new Error('a service is missing');

  t.match(postgres.image, /^postgres:16/, 'PostgreSQL 16');
  t.match(redis.image, /^redis:7/, 'Redis 7');
  t.match(minio.image, /minio/, 'MinIO');
  // Pinned by version: a release tag (x.y or x.y.z, or MinIO's RELEASE.<date>), never latest or a bare major.
  for (const [name, service] of Object.entries(services)) {
    if (service.build) {
      t.match(service.image, /:local$/, `${name}: the image built here`);
      continue;
    }
    const tag = /:([^/:@]+)$/.exec(String(service.image))?.[1] ?? '';
    t.match(tag, /^(\d+\.\d+(\.\d+)?|RELEASE\.\d{4}-\d\d-\d\dT[\d-]+Z)(-[a-z][\w.]*)?$/, `${name}: ${service.image} is pinned to a release`);
  }
  for (const [name, service] of Object.entries(services)) {
    const oneShot = service.restart === 'no';
    if (!oneShot) t.ok(service.healthcheck?.test, `${name}: healthcheck`);
    // What a service waits for must be able to say so: healthy if it keeps running, done if not.
    for (const [dependency, { condition }] of Object.entries((service.depends_on ?? {}) as Record<string, Doc>)) {
      const expected = services[dependency]?.restart === 'no' ? 'service_completed_successfully' : 'service_healthy';
      t.equal(condition, expected, `${name} waits for ${dependency}: ${expected}`);
    }
  }
  /** Every service `name` waits for, directly or through what it waits for. */
  const waitsFor = (name: string, found = new Set<string>()): Set<string> => {
    for (const dependency of Object.keys(services[name]?.depends_on ?? {})) {
      if (!found.has(dependency)) waitsFor(dependency, found.add(dependency));
    }
    return found;
  };

  // Same image, built from deploy/Dockerfile, for the replicas and the migration.
  for (const [name, service] of [['chat', chat], ['migrate', migrate]] as const) {
    t.equal(service.build?.dockerfile, 'deploy/Dockerfile', `${name}: built from deploy/Dockerfile`);
    t.equal(service.build?.context, '.', `${name}: from the repository root`);
    const command = execForm(service.command);
    t.ok(image.builtFiles.has(image.script(command) ?? ''), `${name}: runs ${command[1]}, a file the build writes into the image`);
  }
  t.equal(chat.image, migrate.image, 'one image');
  t.same(migrate.command, ['node', 'dist/migrate.js'], 'migrate runs dist/migrate.js');
  t.ok((chat.deploy?.replicas ?? 1) >= 3, 'three chat replicas');
  t.equal(chat.depends_on?.migrate?.condition, 'service_completed_successfully', 'replicas wait for the migration');
  t.equal(chat.depends_on?.['minio-init']?.condition, 'service_completed_successfully', 'and for the bucket');
  t.equal(chat.ports, undefined, 'replicas are reached only through the load balancer');

  // Every variable is known; the set loads as a production config.
  const raw = chat.environment as Record<string, string>;
  t.same(migrate.environment, raw, 'migrate has the same configuration');
  for (const name of Object.keys(raw)) t.ok(known.has(name), `${name} is a config variable`);
  for (const name of REQUIRED_IN_PRODUCTION) t.ok(raw[name], `${name} is set`);
  t.throws(() => interpolate(raw.JWT_SECRET ?? '', {}), /JWT_SECRET must be set/, 'JWT_SECRET has no default: compose refuses to start without one');
  const shell = { JWT_SECRET: 'compose-test-secret-0123456789' };
  const env = Object.fromEntries(Object.entries(raw).map(([name, value]) => [name, interpolate(String(value), shell)]));
  const config = loads({ ...image.env, ...env });
  t.equal(config.NODE_ENV, 'production');
  t.equal(config.S3_FORCE_PATH_STYLE, true, 'path-style URLs for MinIO');
  t.equal(config.MIGRATE_ON_START, false, 'replicas leave migrations to the migrate service');
  t.match(config.S3_ENDPOINT, /^http:\/\/minio:9000/, 'S3 is the MinIO service');
  t.match(config.DATABASE_URL, /@postgres:5432\//, 'PostgreSQL is the postgres service');
  t.match(config.REDIS_URL, /^redis:\/\/redis:6379/, 'Redis is the redis service');
  // HAProxy replaces X-Forwarded-For (checked below): one trusted hop, whose last entry is the client.
  t.equal(raw.TRUST_PROXY, '1', 'TRUST_PROXY: the one proxy hop, HAProxy');
  t.same(chat.expose, [String(config.PORT)], 'replicas expose PORT to the network');

  // Each process waits for every service it connects to.
  for (const [name, service] of [['chat', chat], ['migrate', migrate]] as const) {
    for (const variable of USES[execForm(service.command)[1] ?? ''] ?? []) {
      const host = new URL(String(config[variable as keyof Config])).hostname;
      t.ok(host in services, `${name}: ${variable} names the compose service ${host}`);
      t.ok(waitsFor(name).has(host), `${name} waits for ${host}, which its ${variable} names`);
    }
  }
  // The credentials the service uses are the ones the stores were created with.
  const store = (service: Doc) => Object.fromEntries(Object.entries(service.environment as Record<string, string>).map(([k, v]) => [k, interpolate(v, shell)]));
  const database = new URL(config.DATABASE_URL ?? '');
  t.same([database.username, decodeURIComponent(database.password), database.pathname.slice(1)], [store(postgres).POSTGRES_USER, store(postgres).POSTGRES_PASSWORD, store(postgres).POSTGRES_DB], 'DATABASE_URL: the user, password and database postgres creates');
  t.same([config.S3_ACCESS_KEY_ID, config.S3_SECRET_ACCESS_KEY], [store(minio).MINIO_ROOT_USER, store(minio).MINIO_ROOT_PASSWORD], 'S3 keys: the MinIO root user');
  t.same(store(mc), store(minio), 'minio-init logs in as that user');

  // Read-only replicas still have a writable /tmp and DATA_DIR.
  for (const [name, service] of [['chat', chat], ['migrate', migrate]] as const) {
    t.equal(service.read_only, true, `${name}: read-only root filesystem`);
    t.same(service.cap_drop, ['ALL'], `${name}: drops all capabilities`);
    for (const path of ['/tmp', config.DATA_DIR]) t.ok((service.tmpfs as string[]).includes(path), `${name}: ${path} is a tmpfs`);
  }

  // The bucket: created, private, on the MinIO that minio-init waits for.
  const mcScript = interpolate([mc.entrypoint, mc.command].flat().join(' '), env);
  t.match(mcScript, new RegExp(`mc mb\\b.*local/${config.S3_BUCKET}\\b`), 'the bucket is created');
  t.notMatch(mcScript, /anonymous set (download|upload|public)|policy set (download|public)/, 'with no anonymous access');
  t.match(mcScript, /anonymous set none/, 'explicitly private');
  const alias = /mc alias set local (\S+)/.exec(mcScript)?.[1] ?? '';
  t.equal(alias, config.S3_ENDPOINT, 'minio-init talks to the S3_ENDPOINT the service uses');
  t.ok(waitsFor('minio-init').has(new URL(alias).hostname), 'and waits for it');

  // One published port, the load balancer's, which PUBLIC_URL names.
  const published = (lb.ports as string[]).map((port) => interpolate(port, {}));
  t.equal(published.length, 1, 'one published port');
  const [hostPort, lbPort] = (published[0] ?? '').split(':');
  t.equal(new URL(config.PUBLIC_URL).port, hostPort, 'PUBLIC_URL is the load balancer URL');
  const published2 = Object.entries(services).filter(([name, service]) => name !== 'lb' && service.ports);
  t.same(published2.map(([name]) => name), [], 'nothing else is published');

  // A drain is never cut short by `docker compose stop`.
  t.ok(
    seconds(chat.stop_grace_period) > (config.SHUTDOWN_DELAY_MS + config.SHUTDOWN_TIMEOUT_MS) / 1000,
    `stop_grace_period ${chat.stop_grace_period} > SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS`,
  );
  const replicaCheck = execForm(chat.healthcheck.test);
  const checked = /http:\/\/127\.0\.0\.1:(\d+)(\/[^'"]*)/.exec(replicaCheck.join(' '));
  t.equal(Number(checked?.[1]), config.PORT, 'replica healthcheck: on PORT');
  t.equal(checked?.[2], '/readyz', 'replica healthcheck: /readyz');
  await serves(t, checked?.[2], 'replica healthcheck');
  await healthcheckWorks(t, replicaCheck, 'replica healthcheck');

  // The load balancer's config.
  const mount = (lb.volumes as string[]).find((volume) => volume.includes('haproxy.cfg'));
  t.ok(mount?.startsWith('./deploy/'), 'the load balancer config is in deploy/');
  const lines = haproxyLines(mount?.split(':')[0]?.replace(/^\.\//, '') ?? 'deploy/haproxy.cfg');
  const directive = (prefix: string) => lines.filter((line) => line.startsWith(prefix));
  t.ok(directive('bind ').some((line) => line.endsWith(`:${lbPort}`)), `listens on the published container port ${lbPort}`);
  t.ok(directive('mode http').length > 0, 'mode http: the WebSocket Upgrade handshake is handled and passed through');
  t.ok(seconds(directive('timeout tunnel')[0]?.split(/\s+/)[2] ?? '0', 'ms') >= 3600, 'upgraded WebSockets may idle for 1 h (timeout tunnel)');
  for (const name of ['client', 'server']) t.ok(directive(`timeout ${name} `).length > 0, `timeout ${name} is set`);
  t.ok(directive('balance roundrobin').length > 0, 'round robin');
  t.same([...directive('stick'), ...directive('cookie'), ...directive('balance source')], [], 'no sticky sessions');
  t.ok(directive('option forwardfor').length > 0, 'X-Forwarded-For');
  t.ok(directive('http-request del-header X-Forwarded-For').length > 0, 'replaced, not appended to (the service trusts it)');
  t.ok(directive('http-request set-header X-Forwarded-Proto').length > 0, 'X-Forwarded-Proto');
  const send = directive('http-check send')[0] ?? '';
  const checkPath = /\buri (\S+)/.exec(send)?.[1];
  t.equal(checkPath, '/readyz', 'active checks on /readyz');
  await serves(t, checkPath, 'HAProxy check', { host: /\bhdr Host (\S+)/i.exec(send)?.[1] ?? 'chat' });
  t.same(directive('http-check expect'), ['http-check expect status 200'], 'a check passes on 200, what a ready replica answers');
  const serverCheck = directive('default-server').find((line) => /\bcheck\b/.test(line)) ?? '';
  t.ok(serverCheck, 'every backend server is checked');
  // A replica is out of rotation before its readiness delay ends and it refuses connections.
  const outAfter = seconds(/\binter (\S+)/.exec(serverCheck)?.[1] ?? '2s', 'ms') * Number(/\bfall (\d+)/.exec(serverCheck)?.[1] ?? 3);
  t.ok(outAfter <= config.SHUTDOWN_DELAY_MS / 1000, `failed checks take a replica out in ${outAfter} s <= SHUTDOWN_DELAY_MS`);
  const backends = directive('server').map((line) => /\s(\S+):(\d+)$/.exec(line)).filter((match) => match !== null);
  t.ok(backends.length > 0 && backends.every((match) => match[1] === 'chat' && Number(match[2]) === config.PORT), `backends: the chat service on PORT ${config.PORT}`);
  t.ok(waitsFor('lb').has('chat'), 'lb waits for its backends');
  t.ok(directive('http-request deny').some((line) => line.includes('path_beg /metrics')), '/metrics is not served on the public port');
  await serves(t, '/metrics', 'what the deny keeps inside');
  const lbCheck = /http:\/\/127\.0\.0\.1:(\d+)(\/\S*)/.exec(execForm(lb.healthcheck.test).join(' '));
  t.equal(lbCheck?.[1], lbPort, 'lb healthcheck: on the port HAProxy binds');
  t.same(directive('monitor-uri'), [`monitor-uri ${lbCheck?.[2]}`], 'lb healthcheck: the monitor-uri HAProxy answers itself');

  if (existsSync('/usr/sbin/haproxy')) {
    t.doesNotThrow(() => execFileSync('/usr/sbin/haproxy', ['-c', '-f', `${ROOT}/deploy/haproxy.cfg`], { stdio: 'pipe' }), 'haproxy -c accepts the config');
  } else {
    t.comment('haproxy is not installed: syntax not checked');
  }
});

// ---------------------------------------------------------------------------------------------

t.test('k8s/: a kustomize base whose manifests agree with each other and with the code', async (t) => {
  const files = k8sDocuments();
  const kustomization = files.get('kustomization.yaml')?.[0];
  const migration = files.get('migrate/kustomization.yaml')?.[0];
  if (!kustomization || !migration) throw new Error('k8s/kustomization.yaml or k8s/migrate/kustomization.yaml is missing');
  // The base (what every image change re-applies), the migration Job apart, monitoring apart.
  const resources = kustomizedFiles(files, '');
  const migrateResources = kustomizedFiles(files, 'migrate');
  const monitoringResources = kustomizedFiles(files, 'monitoring');
  const applied = [...resources, ...migrateResources, ...monitoringResources];
  const all = [...files.entries()].filter(([file]) => !file.endsWith('kustomization.yaml'));
  for (const resource of applied) t.ok(files.has(resource), `resource ${resource} exists`);
  t.notOk(applied.includes('secret.example.yaml'), 'the Secret example is not applied');
  t.same(all.map(([file]) => file).filter((file) => !applied.includes(file)), ['secret.example.yaml'], 'every other manifest is applied by one kustomization');
  const kinds = (paths: string[]): Doc[] => all.filter(([file]) => paths.includes(file)).flatMap(([, docs]) => docs);
  const ofKind = (kind: string, paths = resources): Doc[] => kinds(paths).filter((doc) => doc.kind === kind);
  const one = (kind: string, paths = resources): Doc => {
    const docs = ofKind(kind, paths);
    t.equal(docs.length, 1, `one ${kind}`);
    return docs[0] ?? {};
  };
  const configMap = one('ConfigMap');
  const secret = files.get('secret.example.yaml')?.[0] ?? {};
  const [deployment, service, ingress, hpa, pdb] = ['Deployment', 'Service', 'Ingress', 'HorizontalPodAutoscaler', 'PodDisruptionBudget'].map((kind) => one(kind)) as [Doc, Doc, Doc, Doc, Doc];
  // Jobs are immutable: the base, re-applied with every new image, must not hold one.
  t.same(ofKind('Job'), [], 'no Job in the base');
  const job = one('Job', migrateResources);
  t.same(ofKind('ConfigMap', migrateResources), [configMap], 'the migration applies the same ConfigMap (a first install has no other yet)');
  t.same(kinds(migrateResources).map((doc) => doc.kind).sort(), ['ConfigMap', 'Job'], 'and nothing else');
  t.same(migration.images, kustomization.images, 'the migration runs the image the base runs');

  // Variables: all known, the required ones set, and the set loads.
  t.equal(secret.kind, 'Secret');
  const secretData = secret.stringData as Record<string, string>;
  const configData = configMap.data as Record<string, string>;
  for (const name of [...Object.keys(configData), ...Object.keys(secretData)]) t.ok(known.has(name), `${name} is a config variable`);
  t.same(Object.keys(configData).filter((name) => name in secretData), [], 'no variable in both');
  for (const name of ['JWT_SECRET', 'DATABASE_URL', 'REDIS_URL']) t.ok(secretData[name], `Secret: ${name}`);
  for (const name of REQUIRED_IN_PRODUCTION) t.ok(configData[name] ?? secretData[name], `${name} is set`);
  t.ok(Object.values(secretData).every((value) => /REPLACE/.test(value)), 'the Secret example holds placeholders only');
  const config = loads({ ...image.env, ...configData, ...secretData });
  t.equal(config.NODE_ENV, 'production');
  t.equal(config.PORT, Number(image.args(image.runtime, 'EXPOSE')[0]), 'PORT is the port the image exposes');

  for (const [kind, workload, entry] of [['Deployment', deployment, 'dist/server.js'], ['Job', job, 'dist/migrate.js']] as const) {
    const spec = workload.spec.template.spec as Doc;
    const [container, ...others] = spec.containers as Doc[];
    t.same(others, [], `${kind}: one container`);
    if (!container) continue;
    t.equal(container.image, kustomization.images?.[0]?.name, `${kind}: the kustomize image`);
    t.same(container.command, ['node', entry], `${kind} runs ${entry}`);
    const script = image.script(container.command as string[], container.workingDir);
    t.ok(image.builtFiles.has(script ?? ''), `${kind}: ${script} is a file the build writes into the image`);
    t.same(
      (container.envFrom as Doc[]).map((source) => source.configMapRef?.name ?? source.secretRef?.name),
      [configMap.metadata.name, secret.metadata.name],
      `${kind}: envFrom the ConfigMap and the Secret`,
    );
    for (const variable of (container.env ?? []) as Doc[]) t.ok(known.has(variable.name), `${kind}: env ${variable.name} is a config variable`);
    t.equal(spec.securityContext?.runAsNonRoot, true, `${kind}: runAsNonRoot`);
    t.equal(String(spec.securityContext?.runAsUser), image.args(image.runtime, 'USER').at(-1)?.split(':')[0], `${kind}: runs as the image's user`);
    t.equal(container.securityContext?.readOnlyRootFilesystem, true, `${kind}: readOnlyRootFilesystem`);
    t.equal(container.securityContext?.allowPrivilegeEscalation, false, `${kind}: no privilege escalation`);
    t.same(container.securityContext?.capabilities?.drop, ['ALL'], `${kind}: drops all capabilities`);
    t.ok(container.resources?.requests?.cpu && container.resources?.requests?.memory, `${kind}: requests`);
    t.ok(container.resources?.limits?.memory, `${kind}: limits`);
    const mounts = ((container.volumeMounts ?? []) as Doc[]).map((mount) => mount.mountPath);
    for (const path of ['/tmp', config.DATA_DIR]) t.ok(mounts.includes(path), `${kind}: a writable ${path}`);
    const emptyDirs = ((spec.volumes ?? []) as Doc[]).filter((volume) => volume.emptyDir).map((volume) => volume.name);
    for (const mount of (container.volumeMounts ?? []) as Doc[]) t.ok(emptyDirs.includes(mount.name), `${kind}: ${mount.mountPath} is an emptyDir`);
  }

  // Probes: routes the service answers 200 on, on the container port, which is PORT.
  const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
  const jobLabels = job.spec.template.metadata.labels as Record<string, string>;
  const pod = deployment.spec.template.spec as Doc;
  const container = pod.containers[0] as Doc;
  const ports = container.ports as Doc[];
  t.equal(ports.length, 1, 'one container port');
  t.equal(ports[0]?.containerPort, config.PORT, 'containerPort is PORT');
  const portOf = (port: string | number): number | undefined =>
    typeof port === 'number' ? port : ports.find((candidate) => candidate.name === port)?.containerPort;
  for (const [probe, path] of Object.entries({ readinessProbe: '/readyz', livenessProbe: '/healthz', startupProbe: undefined })) {
    const get = container[probe]?.httpGet as Doc | undefined;
    if (!get && !path) continue;
    if (path) t.equal(get?.path, path, `${probe}: ${path}`);
    t.equal(portOf(get?.port), config.PORT, `${probe}: on PORT`);
    await serves(t, get?.path, probe);
  }

  // A replica that migrates at start listens only afterwards: its startup probe must outlast the
  // longest migration, or the Job is the one path and replicas listen at once.
  const startup = container.startupProbe as Doc;
  const startupWindow = (startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3);
  if (config.MIGRATE_ON_START) {
    t.ok(startupWindow >= job.spec.activeDeadlineSeconds, `MIGRATE_ON_START: startup window ${startupWindow} s >= the longest migration (${job.spec.activeDeadlineSeconds} s)`);
  } else {
    t.pass(`MIGRATE_ON_START=false: migrations run in the Job only; the startup probe (${startupWindow} s) covers the process start`);
  }
  t.ok(job.spec.activeDeadlineSeconds > 0, 'the Job has a deadline (kubectl wait covers it)');

  // /metrics is collected: scrape annotations on the pods, and a PodMonitor for the operator.
  const scrape = (deployment.spec.template.metadata.annotations ?? {}) as Record<string, string>;
  t.equal(scrape['prometheus.io/scrape'], 'true', 'pods: prometheus.io/scrape');
  t.equal(Number(scrape['prometheus.io/port']), config.PORT, 'pods: prometheus.io/port is PORT');
  await serves(t, scrape['prometheus.io/path'], 'pods: prometheus.io/path');
  const podMonitor = one('PodMonitor', monitoringResources);
  t.ok(Object.entries(podMonitor.spec.selector.matchLabels as Record<string, string>).every(([key, value]) => podLabels[key] === value), 'PodMonitor selects the pods');
  t.notOk(Object.entries(podMonitor.spec.selector.matchLabels as Record<string, string>).every(([key, value]) => jobLabels[key] === value), 'and not the Job');
  for (const endpoint of podMonitor.spec.podMetricsEndpoints as Doc[]) {
    t.equal(portOf(endpoint.port), config.PORT, `PodMonitor scrapes the container port ${endpoint.port}`);
    await serves(t, endpoint.path, 'PodMonitor path');
  }

  // The grace period outlasts preStop + the drain.
  const preStop = container.lifecycle?.preStop as Doc | undefined;
  // Either the native sleep action or `exec: sleep N`.
  const command = (preStop?.exec?.command ?? []) as string[];
  const sleep = Number(preStop?.sleep?.seconds ?? (command[0] === 'sleep' ? command[1] : NaN));
  t.ok(sleep >= 2 && sleep <= 30, `preStop sleeps ${sleep} s`);
  const grace = pod.terminationGracePeriodSeconds as number;
  const drain = (config.SHUTDOWN_DELAY_MS + config.SHUTDOWN_TIMEOUT_MS) / 1000;
  t.ok(grace > sleep + drain, `terminationGracePeriodSeconds ${grace} > preStop ${sleep} + drain ${drain}`);

  // Service, Ingress, HPA, PDB point at the pods and each other.
  const selects = (selector: Record<string, string>) => Object.entries(selector).every(([key, value]) => podLabels[key] === value);
  t.ok(selects(deployment.spec.selector.matchLabels), 'Deployment selector matches its pods');
  t.ok(selects(service.spec.selector), 'Service selects the pods');
  t.ok(selects(pdb.spec.selector.matchLabels), 'PDB selects the pods');
  t.notOk(Object.entries(service.spec.selector).every(([key, value]) => jobLabels[key] === value), 'the Service does not select the Job');
  t.not(service.spec.sessionAffinity, 'ClientIP', 'no Service affinity');
  const servicePort = (service.spec.ports as Doc[])[0] ?? {};
  t.equal(portOf(servicePort.targetPort), config.PORT, 'Service targets PORT');
  const paths = (ingress.spec.rules as Doc[]).flatMap((rule) => rule.http.paths as Doc[]);
  for (const path of paths) {
    const backend = path.backend.service as Doc;
    t.equal(backend.name, service.metadata.name, `Ingress ${path.path} routes to the Service`);
    t.ok(backend.port.name === servicePort.name || backend.port.number === servicePort.port, 'on its port');
  }
  const routed = (url: string) => paths.some((path) => (path.pathType === 'Exact' ? url === path.path : url === path.path || url.startsWith(`${path.path.replace(/\/$/, '')}/`)));
  for (const url of ['/', '/api/auth/login/', '/ws/chat/1/', '/ws/notifications/', '/media/attachments/1/a.png', '/docs/', '/openapi.json', '/asyncapi.json']) {
    t.ok(routed(url), `Ingress serves ${url}`);
  }
  // The web client: its page and every file the build writes for it.
  const webFiles = built.filter((file) => file.path.startsWith('dist/web/')).map((file) => `/${file.path.slice('dist/web/'.length)}`);
  t.ok(webFiles.length >= 3, `the build writes the web client (${webFiles.join(', ')})`);
  for (const url of webFiles) t.ok(routed(url), `Ingress serves the web client's ${url}`);
  for (const url of ['/metrics', '/readyz']) t.notOk(routed(url), `Ingress keeps ${url} inside the cluster`);
  for (const path of paths.filter((p) => p.pathType === 'Exact')) await serves(t, path.path, `Ingress ${path.path}`);
  const annotations = ingress.metadata.annotations as Record<string, string>;
  for (const name of ['proxy-read-timeout', 'proxy-send-timeout']) {
    t.ok(Number(annotations[`nginx.ingress.kubernetes.io/${name}`]) >= 3600, `Ingress ${name} >= 3600 s for WebSockets`);
  }
  t.notOk(Object.keys(annotations).some((key) => /affinity|upstream-hash-by|session-cookie/.test(key)), 'no sticky sessions on the Ingress');
  const bodySize = annotations['nginx.ingress.kubernetes.io/proxy-body-size'] ?? '1m';
  t.ok(Number.parseInt(bodySize, 10) * 1024 * 1024 >= config.MAX_ATTACHMENT_BYTES, `Ingress body size ${bodySize} fits MAX_ATTACHMENT_BYTES`);
  t.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name, 'HPA scales the Deployment');
  t.ok(hpa.spec.minReplicas >= 2, 'HPA keeps at least two replicas');
  t.ok((hpa.spec.metrics as Doc[]).some((metric) => metric.resource?.name === 'cpu'), 'HPA on CPU');
  t.equal(deployment.spec.replicas, undefined, 'the HPA, not the Deployment, sets the replica count');
  t.ok(pdb.spec.maxUnavailable !== undefined || pdb.spec.minAvailable < hpa.spec.minReplicas, 'the PDB lets a drain proceed');

  // kustomize itself, when kubectl is here.
  const tagged = `${kustomization.images[0].newName}:${kustomization.images[0].newTag}`;
  const expected: Record<string, string[]> = {
    k8s: ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Ingress', 'PodDisruptionBudget', 'Service'],
    'k8s/migrate': ['ConfigMap', 'Job'],
    'k8s/monitoring': ['PodMonitor'],
  };
  for (const [dir, kindsBuilt] of Object.entries(expected)) {
    let kubectl: string | undefined;
    try {
      kubectl = execFileSync('kubectl', ['kustomize', `${ROOT}/${dir}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      t.comment('kubectl is not installed: kustomize build not run');
      break;
    }
    const built = parseAllDocuments(kubectl).map((doc) => doc.toJS() as Doc);
    t.same(built.map((doc) => doc.kind).sort(), kindsBuilt, `kustomize builds ${dir}/`);
    const workloads = built.filter((doc) => doc.kind === 'Deployment' || doc.kind === 'Job');
    t.ok(workloads.every((doc) => doc.spec.template.spec.containers[0].image === tagged), `${dir}/: image set to ${tagged}`);
  }
});

// ---------------------------------------------------------------------------------------------

// The README's configuration table is checked against the schema in test/config.test.ts.
t.test('the README names scripts, services, files and objects that exist', async (t) => {
  const readme = read('README.md');
  const composeText = read('docker-compose.yml');
  const services = (parseYaml(composeText, { merge: true }) as Doc).services as Record<string, Doc>;
  const k8s = [...k8sDocuments().values()].flat();
  const named = (kind: string) => k8s.filter((doc) => doc.kind === kind).map((doc) => doc.metadata?.name as string);
  // Commands are read from code only (sh blocks and `inline` spans), object names also from prose.
  const code = [...readme.matchAll(/```[\s\S]*?```|`[^`\n]+`/g)].map((m) => m[0]).join('\n');
  const each = (text: string, pattern: RegExp, what: string, check: (name: string) => void) => {
    const names = [...new Set([...text.matchAll(pattern)].map((m) => m[1] ?? ''))];
    t.ok(names.length > 0, `the README names ${what}`);
    for (const name of names) check(name);
  };
  const images = (k8sDocuments().get('kustomization.yaml')?.[0]?.images ?? []) as Doc[];

  each(code, /\bnpm (?:run )?(?!install\b|ci\b|run\b)([\w:-]+)/g, 'npm scripts', (name) => t.ok(pkg.scripts[name], `npm ${name} is a package.json script`));
  each(code, /docker compose [^\n`]*?(?:--scale |logs (?:-f )?)(\w[\w-]*)/g, 'compose services', (name) => t.ok(name in services, `compose service ${name} exists`));
  for (const name of interpolated(composeText)) t.match(readme, `\`${name}\``, `compose variable ${name} is documented`);
  each(code, /\b(k8s\/[\w./-]+\.yaml)\b/g, 'manifests', (path) => t.ok(exists(path), `${path} exists`));
  each(code, /kubectl apply -k (k8s\/[\w/-]*)/g, 'kustomizations', (dir) => t.ok(exists(`${dir.replace(/\/$/, '')}/kustomization.yaml`), `${dir} is a kustomization`));
  // The documented release gates the rollout on the migration: the Job completes before the base is applied.
  const step = (command: string) => code.indexOf(command);
  const release = ['kubectl delete job chat-migrate', 'kubectl apply -k k8s/migrate/', 'kubectl wait --for=condition=complete job/chat-migrate', 'kubectl apply -k k8s/\n', 'kubectl rollout status deployment/'];
  t.ok(release.every((command) => step(command) >= 0), 'the README shows the release sequence');
  t.same([...release].sort((a, b) => step(a) - step(b)), release, 'in this order: delete the old Job, migrate, wait, roll out');
  for (const dir of ['', 'migrate/']) {
    t.ok(code.includes(`(cd k8s${dir ? `/${dir.slice(0, -1)}` : ''} && kustomize edit set image`), `the image is set in k8s/${dir}`);
  }
  each(code, /\bjob[/ ]([a-z][\w-]*)/g, 'the Job', (name) => t.ok(named('Job').includes(name), `Job ${name} exists`));
  each(code, /\bdeployment\/([a-z][\w-]*)/g, 'the Deployment', (name) => t.ok(named('Deployment').includes(name), `Deployment ${name} exists`));
  each(readme, /ConfigMap `([\w-]+)`/g, 'the ConfigMap', (name) => t.ok(named('ConfigMap').includes(name), `ConfigMap ${name} exists`));
  each(readme, /Secret `([\w-]+)`/g, 'the Secret', (name) => t.ok(named('Secret').includes(name), `Secret ${name} exists`));
  each(code, /kustomize edit set image ([\w-]+)=/g, 'the image', (name) => t.ok(images.some((entry) => entry.name === name), `kustomize image ${name} exists`));
});
