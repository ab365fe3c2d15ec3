/**
 * docker-compose.yml and the HAProxy config it mounts: the services wait for what they use, the
 * variables load, the credentials match the stores, the health checks and the load balancer's
 * checks ask routes the service answers, and a drain is never cut short.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import type { Config } from '../../src/config.js';
import { known, loads, REQUIRED_IN_PRODUCTION, USES, type DeployContext } from '../helpers/deploy-context.js';
import { ROOT, execForm, haproxyLines, interpolate, read, seconds, type Doc } from '../helpers/deploy-files.js';

export function deployComposeSuite(t: Test, context: DeployContext): void {
  const { image, serves, healthcheckWorks } = context;

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
}
