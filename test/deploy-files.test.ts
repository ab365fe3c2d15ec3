/**
 * The deployment files agree with the code: every variable they set is one the config schema
 * knows (and the whole set loads), probes hit real routes on the real port, the image runs
 * what `npm run build` produces, the load balancer passes WebSockets, and the grace periods
 * outlast the drain. No container engine is needed: the files are read and cross-checked.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { configNames, loadConfig, type Config } from '../src/config.js';
import { buildTestApp, tempDir, testDatabase } from './helpers/app.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string): string => readFileSync(`${ROOT}/${path}`, 'utf8');
const exists = (path: string): boolean => existsSync(`${ROOT}/${path}`);
const known = new Set(configNames());

// Loose shapes of the parts of the manifests that are checked.
/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML, asserted field by field */
type Doc = Record<string, any>;

/** Seconds from a duration: compose (`20s`, `1m30s`), HAProxy (`1h`, `60s`, bare = ms). */
function seconds(value: string | number, bareUnit: 's' | 'ms' = 's'): number {
  if (typeof value === 'number') return bareUnit === 'ms' ? value / 1000 : value;
  const units: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600, d: 86400 };
  if (/^\d+$/.test(value)) return Number(value) / (bareUnit === 'ms' ? 1000 : 1);
  let total = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+(?:\.\d+)?)(us|ms|s|m|h|d)/g)) total += Number(amount) * (units[unit ?? 's'] ?? NaN);
  return total;
}

/** Compose's interpolation: `${NAME:-default}`, `${NAME:?error}`, `${NAME}`, `$$`. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\{(\w+)(?::?([-?])([^}]*))?\}/g, (whole, name?: string, kind?: string, rest?: string) => {
    if (whole === '$$') return '$';
    const set = name ? env[name] : undefined;
    if (set !== undefined && set !== '') return set;
    if (kind === '-') return rest ?? '';
    throw new Error(`${name} must be set: ${rest}`);
  });
}

/** Builds the app once (for its routes) and loads a config from a manifest's variables. */
async function routesApp(t: Parameters<typeof buildTestApp>[0]): Promise<FastifyInstance> {
  const { database } = await testDatabase(t, 'pglite');
  return buildTestApp(t, { database, bus: createMemoryBus() });
}
/** Loads a manifest's variables as the service would (JWT_SECRET is set: nothing is written). */
const loads = (env: Record<string, string>): Config => {
  if (!env.JWT_SECRET) throw new Error('JWT_SECRET is not set');
  return loadConfig(env);
};

const REQUIRED_IN_PRODUCTION = ['NODE_ENV', 'JWT_SECRET', 'DATABASE_URL', 'REDIS_URL', 'S3_BUCKET', 'PUBLIC_URL'];

// ---------------------------------------------------------------------------------------------

interface Instruction {
  stage: number;
  keyword: string;
  args: string;
}

/** Dockerfile instructions (continuations joined, comments dropped), numbered by stage. */
function dockerfile(): Instruction[] {
  const text = read('deploy/Dockerfile').replace(/\\\n/g, ' ');
  const instructions: Instruction[] = [];
  let stage = -1;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [keyword = '', ...rest] = line.split(/\s+/);
    if (keyword.toUpperCase() === 'FROM') stage++;
    instructions.push({ stage, keyword: keyword.toUpperCase(), args: rest.join(' ') });
  }
  return instructions;
}

t.test('Dockerfile: multi-stage build, production dependencies, compiled JS, non-root', async (t) => {
  const steps = dockerfile();
  const stages = steps.filter((s) => s.keyword === 'FROM');
  t.ok(stages.length >= 2, 'at least a build and a runtime stage');
  const args = Object.fromEntries(
    steps.filter((s) => s.keyword === 'ARG' && s.args.includes('=')).map((s) => s.args.split('=') as [string, string]),
  );
  for (const from of stages) {
    const image = from.args.split(/\s+/)[0]?.replace(/^\$\{(\w+)\}$/, (_m, name: string) => args[name] ?? '');
    t.match(image, /^node:24(-|\.|$).*(bookworm-slim|alpine)/, `base image ${image}: Node 24, slim or alpine`);
  }
  const runtime = stages.length - 1;
  const run = (stage: number) => steps.filter((s) => s.stage === stage && s.keyword === 'RUN').map((s) => s.args);
  const buildRuns = steps.filter((s) => s.stage < runtime && s.keyword === 'RUN').map((s) => s.args).join('\n');
  t.match(buildRuns, /\bnpm ci\b/, 'build stage: npm ci');
  t.match(buildRuns, /\bnpm run build\b/, 'build stage: npm run build');
  t.ok(run(runtime).some((r) => /\bnpm ci\b.*--omit=dev/.test(r)), 'runtime stage: npm ci --omit=dev');
  t.notOk(run(runtime).some((r) => /npm run build|\btsc\b|tsx/.test(r)), 'runtime stage compiles nothing');

  const copies = steps.filter((s) => s.stage === runtime && s.keyword === 'COPY').map((s) => s.args);
  t.ok(copies.some((c) => /--from=\S+\s+\S*dist\s/.test(c)), 'dist/ from the build stage');
  for (const path of ['drizzle', 'scripts/start.mjs', 'package.json', 'package-lock.json']) {
    t.ok(copies.some((c) => c.split(/\s+/).slice(0, -1).some((source) => source === path || source === `${path}/`)), `copies ${path}`);
  }
  // Every path copied from the build context exists in the repository.
  for (const copy of steps.filter((s) => s.keyword === 'COPY' && !s.args.includes('--from='))) {
    for (const source of copy.args.split(/\s+/).slice(0, -1).filter((part) => !part.startsWith('--'))) {
      t.ok(exists(source), `COPY source ${source} exists`);
    }
  }

  const env = Object.fromEntries(
    steps
      .filter((s) => s.stage === runtime && s.keyword === 'ENV')
      .flatMap((s) => [...s.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1] ?? '', m[2] ?? ''])),
  );
  t.equal(env.NODE_ENV, 'production', 'NODE_ENV=production');
  for (const name of Object.keys(env).filter((n) => n !== 'NODE_OPTIONS')) t.ok(known.has(name), `ENV ${name} is a config variable`);
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  const heapFlag = /--max-semi-space-size=(\d+)/.exec(env.NODE_OPTIONS ?? '')?.[0];
  t.ok(heapFlag, 'NODE_OPTIONS sizes the young generation');
  t.ok(heapFlag && pkg.scripts.start?.includes(heapFlag), 'as npm start does');

  const user = steps.filter((s) => s.stage === runtime && s.keyword === 'USER').at(-1)?.args ?? 'root';
  t.notMatch(user, /^(root|0)(:|$)/, `runs as ${user}, not root`);
  const expose = steps.find((s) => s.stage === runtime && s.keyword === 'EXPOSE')?.args;
  t.equal(Number(expose), Number(env.PORT ?? 3000), 'EXPOSE is the PORT');
  t.equal(Number(expose), loadConfig({ DATA_DIR: tempDir(t) }).PORT, 'and the default PORT');

  const healthcheck = steps.find((s) => s.stage === runtime && s.keyword === 'HEALTHCHECK')?.args ?? '';
  t.match(healthcheck, /CMD \["node", "-e", ".*fetch\(.*\/healthz/, 'HEALTHCHECK: node fetch of /healthz');

  const cmd = steps.filter((s) => s.stage === runtime && s.keyword === 'CMD').at(-1)?.args;
  t.same(JSON.parse(cmd ?? '[]'), ['node', 'dist/server.js'], 'CMD runs the compiled server');
  t.notOk(steps.some((s) => s.stage === runtime && s.keyword === 'ENTRYPOINT'), 'no ENTRYPOINT wrapping it');
});

t.test('the image runs what `npm run build` produces, as the README quick start does', async (t) => {
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  const tsconfig = JSON.parse(read('tsconfig.json')) as { compilerOptions: { outDir: string; rootDir: string } };
  t.match(pkg.scripts.build, /^tsc -p tsconfig\.json && node scripts\/build-server\.mjs && node scripts\/build-web\.mjs$/, 'build is tsc, then the server and web client bundles');
  const buildStage = read('deploy/Dockerfile').split(/^FROM /m)[1] ?? '';
  const copied = [...buildStage.matchAll(/^COPY (.+) \S+$/gm)].flatMap((m) => (m[1] ?? '').split(/\s+/));
  const buildScripts = [...(pkg.scripts.build ?? '').matchAll(/node (scripts\/\S+\.mjs)/g)].map((m) => m[1] ?? '');
  t.ok(buildScripts.length >= 2, 'the build runs its bundling scripts');
  for (const input of ['tsconfig.json', 'src', ...buildScripts]) t.ok(copied.includes(input), `the build stage has ${input}`);
  t.equal(tsconfig.compilerOptions.rootDir, 'src');
  t.equal(tsconfig.compilerOptions.outDir, 'dist');
  for (const entry of ['server', 'migrate']) {
    t.ok(exists(`src/${entry}.ts`), `src/${entry}.ts compiles to dist/${entry}.js`);
    if (exists('dist')) t.ok(exists(`dist/${entry}.js`), `dist/${entry}.js is there after the build`);
  }
  const start = read('scripts/start.mjs');
  t.match(start, /dist\/server\.js/, 'npm start runs dist/server.js too');
  t.match(start, /dist\/web\/index\.html/, 'and builds when the web client is missing');
  t.match(start, /dist\/migrate\.js/, 'npm run migrate runs dist/migrate.js too');

  const readme = read('README.md');
  t.match(readme, /npm (install|ci)\b.*npm start/, 'the README quick start installs and starts');
  const buildRuns = dockerfile().filter((s) => s.keyword === 'RUN').map((s) => s.args).join('\n');
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
  for (const [name, service] of Object.entries(services)) {
    const oneShot = service.restart === 'no';
    if (!oneShot) t.ok(service.healthcheck?.test, `${name}: healthcheck`);
  }

  // Same image, built from deploy/Dockerfile, for the replicas and the migration.
  for (const [name, service] of [['chat', chat], ['migrate', migrate]] as const) {
    t.equal(service.build?.dockerfile, 'deploy/Dockerfile', `${name}: built from deploy/Dockerfile`);
    t.equal(service.build?.context, '.', `${name}: from the repository root`);
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
  const env = Object.fromEntries(
    Object.entries(raw).map(([name, value]) => [name, interpolate(String(value), { JWT_SECRET: 'compose-test-secret-0123456789' })]),
  );
  const config = loads(env);
  t.equal(config.NODE_ENV, 'production');
  t.equal(config.S3_FORCE_PATH_STYLE, true, 'path-style URLs for MinIO');
  t.equal(config.MIGRATE_ON_START, false, 'replicas leave migrations to the migrate service');
  t.match(config.S3_ENDPOINT, /^http:\/\/minio:9000/, 'S3 is the MinIO service');
  t.match(config.DATABASE_URL, /@postgres:5432\//, 'PostgreSQL is the postgres service');
  t.match(config.REDIS_URL, /^redis:\/\/redis:6379/, 'Redis is the redis service');

  // The bucket: created, private.
  const mcScript = interpolate([mc.entrypoint, mc.command].flat().join(' '), env);
  t.match(mcScript, new RegExp(`mc mb\\b.*local/${config.S3_BUCKET}\\b`), 'the bucket is created');
  t.notMatch(mcScript, /anonymous set (download|upload|public)|policy set (download|public)/, 'with no anonymous access');
  t.match(mcScript, /anonymous set none/, 'explicitly private');

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
  t.match(chat.healthcheck.test.join(' '), new RegExp(`127\\.0\\.0\\.1:${config.PORT}/readyz`), 'replica healthcheck: /readyz on PORT');

  // The load balancer's config.
  const mount = (lb.volumes as string[]).find((volume) => volume.includes('haproxy.cfg'));
  t.ok(mount?.startsWith('./deploy/'), 'the load balancer config is in deploy/');
  const cfg = read(mount?.split(':')[0]?.replace(/^\.\//, '') ?? 'deploy/haproxy.cfg');
  const lines = cfg.split('\n').map((line) => line.replace(/#.*/, '').trim()).filter(Boolean);
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
  t.ok(directive('http-check send').some((line) => line.includes('uri /readyz')), 'active checks on /readyz');
  t.ok(directive('server').some((line) => line.endsWith(`chat:${config.PORT}`)), `backends: the chat service on PORT ${config.PORT}`);
  t.ok(directive('http-request deny').some((line) => line.includes('path_beg /metrics')), '/metrics is not served on the public port');

  const app = await routesApp(t);
  t.ok(app.hasRoute({ method: 'GET', url: '/readyz' }), '/readyz is a route');
  t.ok(app.hasRoute({ method: 'GET', url: '/healthz' }), '/healthz is a route');

  if (existsSync('/usr/sbin/haproxy')) {
    t.doesNotThrow(() => execFileSync('/usr/sbin/haproxy', ['-c', '-f', `${ROOT}/deploy/haproxy.cfg`], { stdio: 'pipe' }), 'haproxy -c accepts the config');
  } else {
    t.comment('haproxy is not installed: syntax not checked');
  }
});

// ---------------------------------------------------------------------------------------------

/** Every document of every k8s/*.yaml, by file. */
function k8sDocuments(): Map<string, Doc[]> {
  const files = new Map<string, Doc[]>();
  for (const file of readdirSync(`${ROOT}/k8s`).filter((name) => name.endsWith('.yaml')).sort()) {
    const docs = parseAllDocuments(read(`k8s/${file}`)).map((doc) => {
      if (doc.errors.length > 0) throw new Error(`k8s/${file}: ${doc.errors[0]?.message}`);
      return doc.toJS() as Doc;
    });
    files.set(file, docs.filter(Boolean));
  }
  return files;
}

t.test('k8s/: a kustomize base whose manifests agree with each other and with the code', async (t) => {
  const files = k8sDocuments();
  const kustomization = files.get('kustomization.yaml')?.[0];
  if (!kustomization) throw new Error('k8s/kustomization.yaml is missing');
  const resources = kustomization.resources as string[];
  const all = [...files.entries()].filter(([file]) => file !== 'kustomization.yaml');
  for (const resource of resources) t.ok(files.has(resource), `resource ${resource} exists`);
  t.notOk(resources.includes('secret.example.yaml'), 'the Secret example is not applied');
  t.same(
    all.map(([file]) => file).filter((file) => !resources.includes(file)),
    ['secret.example.yaml'],
    'every other manifest is a resource',
  );
  const ofKind = (kind: string): Doc[] =>
    all.filter(([file]) => resources.includes(file)).flatMap(([, docs]) => docs).filter((doc) => doc.kind === kind);
  const one = (kind: string): Doc => {
    const docs = ofKind(kind);
    t.equal(docs.length, 1, `one ${kind}`);
    return docs[0] ?? {};
  };

  const configMap = one('ConfigMap');
  const secret = files.get('secret.example.yaml')?.[0] ?? {};
  const deployment = one('Deployment');
  const job = one('Job');
  const service = one('Service');
  const ingress = one('Ingress');
  const hpa = one('HorizontalPodAutoscaler');
  const pdb = one('PodDisruptionBudget');

  // Variables: all known, the required ones set, and the set loads.
  t.equal(secret.kind, 'Secret');
  const secretData = secret.stringData as Record<string, string>;
  const configData = configMap.data as Record<string, string>;
  for (const name of [...Object.keys(configData), ...Object.keys(secretData)]) t.ok(known.has(name), `${name} is a config variable`);
  t.same(Object.keys(configData).filter((name) => name in secretData), [], 'no variable in both');
  for (const name of ['JWT_SECRET', 'DATABASE_URL', 'REDIS_URL']) t.ok(secretData[name], `Secret: ${name}`);
  for (const name of REQUIRED_IN_PRODUCTION) t.ok(configData[name] ?? secretData[name], `${name} is set`);
  t.ok(Object.values(secretData).every((value) => /REPLACE/.test(value)), 'the Secret example holds placeholders only');
  const config = loads({ ...configData, ...secretData });
  t.equal(config.NODE_ENV, 'production');

  const pods = [
    ['Deployment', deployment],
    ['Job', job],
  ] as const;
  for (const [kind, workload] of pods) {
    const spec = workload.spec.template.spec as Doc;
    const [container, ...others] = spec.containers as Doc[];
    t.same(others, [], `${kind}: one container`);
    if (!container) continue;
    t.equal(container.image, kustomization.images?.[0]?.name, `${kind}: the kustomize image`);
    t.same(
      (container.envFrom as Doc[]).map((source) => source.configMapRef?.name ?? source.secretRef?.name),
      [configMap.metadata.name, secret.metadata.name],
      `${kind}: envFrom the ConfigMap and the Secret`,
    );
    for (const variable of (container.env ?? []) as Doc[]) t.ok(known.has(variable.name), `${kind}: env ${variable.name} is a config variable`);
    t.equal(spec.securityContext?.runAsNonRoot, true, `${kind}: runAsNonRoot`);
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
  t.same(job.spec.template.spec.containers[0].command, ['node', 'dist/migrate.js'], 'the Job runs dist/migrate.js');

  // Probes: real routes, on the container port, which is PORT.
  const pod = deployment.spec.template.spec as Doc;
  const container = pod.containers[0] as Doc;
  const ports = container.ports as Doc[];
  t.equal(ports.length, 1, 'one container port');
  const containerPort = ports[0]?.containerPort;
  t.equal(containerPort, config.PORT, 'containerPort is PORT');
  const portOf = (port: string | number): number | undefined =>
    typeof port === 'number' ? port : ports.find((candidate) => candidate.name === port)?.containerPort;
  const app = await routesApp(t);
  const probes: Record<string, string> = { readinessProbe: '/readyz', livenessProbe: '/healthz' };
  for (const [probe, path] of Object.entries(probes)) {
    const get = container[probe]?.httpGet as Doc | undefined;
    t.equal(get?.path, path, `${probe}: ${path}`);
    t.equal(portOf(get?.port), config.PORT, `${probe}: on PORT`);
  }
  if (container.startupProbe) t.equal(portOf(container.startupProbe.httpGet?.port), config.PORT, 'startupProbe: on PORT');
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    const path = container[probe]?.httpGet?.path as string | undefined;
    if (path) t.ok(app.hasRoute({ method: 'GET', url: path }), `${probe}: ${path} is a route`);
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
  const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
  const selects = (selector: Record<string, string>) => Object.entries(selector).every(([key, value]) => podLabels[key] === value);
  t.ok(selects(deployment.spec.selector.matchLabels), 'Deployment selector matches its pods');
  t.ok(selects(service.spec.selector), 'Service selects the pods');
  t.ok(selects(pdb.spec.selector.matchLabels), 'PDB selects the pods');
  const jobLabels = job.spec.template.metadata.labels as Record<string, string>;
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
  for (const url of ['/api/auth/login/', '/ws/chat/1/', '/ws/notifications/', '/media/attachments/1/a.png', '/docs/', '/openapi.json']) {
    t.ok(routed(url), `Ingress serves ${url}`);
  }
  for (const url of ['/metrics', '/readyz']) t.notOk(routed(url), `Ingress keeps ${url} inside the cluster`);
  const annotations = ingress.metadata.annotations as Record<string, string>;
  for (const name of ['proxy-read-timeout', 'proxy-send-timeout']) {
    t.ok(Number(annotations[`nginx.ingress.kubernetes.io/${name}`]) >= 3600, `Ingress ${name} >= 3600 s for WebSockets`);
  }
  t.notOk(
    Object.keys(annotations).some((key) => /affinity|upstream-hash-by|session-cookie/.test(key)),
    'no sticky sessions on the Ingress',
  );
  const bodySize = annotations['nginx.ingress.kubernetes.io/proxy-body-size'] ?? '1m';
  t.ok(Number.parseInt(bodySize, 10) * 1024 * 1024 >= config.MAX_ATTACHMENT_BYTES, `Ingress body size ${bodySize} fits MAX_ATTACHMENT_BYTES`);
  t.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name, 'HPA scales the Deployment');
  t.ok(hpa.spec.minReplicas >= 2, 'HPA keeps at least two replicas');
  t.ok((hpa.spec.metrics as Doc[]).some((metric) => metric.resource?.name === 'cpu'), 'HPA on CPU');
  t.equal(deployment.spec.replicas, undefined, 'the HPA, not the Deployment, sets the replica count');
  t.ok(pdb.spec.maxUnavailable !== undefined || pdb.spec.minAvailable < hpa.spec.minReplicas, 'the PDB lets a drain proceed');

  // kustomize itself, when kubectl is here.
  let kubectl: string | undefined;
  try {
    kubectl = execFileSync('kubectl', ['kustomize', `${ROOT}/k8s`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    t.comment('kubectl is not installed: kustomize build not run');
  }
  if (kubectl) {
    const built = parseAllDocuments(kubectl).map((doc) => doc.toJS() as Doc);
    t.same(built.map((doc) => doc.kind).sort(), ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Ingress', 'Job', 'PodDisruptionBudget', 'Service'], 'kustomize builds the base');
    const image = `${kustomization.images[0].newName}:${kustomization.images[0].newTag}`;
    t.ok(built.filter((doc) => doc.kind === 'Deployment' || doc.kind === 'Job').every((doc) => doc.spec.template.spec.containers[0].image === image), `image set to ${image}`);
  }
});
