/**
 * Shared set-up of the deployment-file suites (test/suites/deploy-*.ts), built once by
 * test/deploy-files.test.ts: one app for every probe, listening for the health-check commands,
 * and one run of the build's bundling steps, whose output the image is checked against.
 */
import type { AddressInfo } from 'node:net';
import type { Test } from 'tap';
import { createMemoryBus } from '../../src/bus/bus-memory.js';
import { ConfigSchema, loadConfig, type Config } from '../../src/config.js';
import { buildTestApp, testDatabase } from './app.js';
import { buildOutputs, dockerfile, dockerImage, read, runHealthcheck, type BuiltFile, type DockerImage } from './deploy-files.js';
import { freePort } from './ports.js';

/** The variables the service reads: the config schema's keys. Any other name in a manifest is a mistake. */
export const known = new Set(Object.keys(ConfigSchema.properties));
export const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; engines: { node: string }; dependencies: Record<string, string> };
export const REQUIRED_IN_PRODUCTION = ['NODE_ENV', 'JWT_SECRET', 'DATABASE_URL', 'REDIS_URL', 'S3_BUCKET', 'PUBLIC_URL'];
/** What each entry point connects to, by the variable naming it: src/migrate.ts opens only the database. */
export const USES: Record<string, string[]> = { 'dist/server.js': ['DATABASE_URL', 'REDIS_URL', 'S3_ENDPOINT'], 'dist/migrate.js': ['DATABASE_URL'] };

/** Loads a manifest's variables as the service would (JWT_SECRET is set: nothing is written). */
export const loads = (env: Record<string, string>): Config => {
  if (!env.JWT_SECRET) throw new Error('JWT_SECRET is not set');
  return loadConfig(env);
};

/**
 * What every deployment suite works with. Guarantees: the app answers (in-process and on its
 * port) until the root test ends; `build` is the one run of the bundling steps, `image` the
 * Dockerfile read against its output.
 */
export interface DeployContext {
  /** The bundling steps of `npm run build` (tsc's own output is replaced by the server bundles). */
  buildScripts: string[];
  build: { files: BuiltFile[]; errors: string[] };
  /** `build.files`. */
  built: BuiltFile[];
  image: DockerImage;
  /** Asserts the app answers GET `path` with 200. */
  serves(t: Test, path: string | undefined, label: string, headers?: Record<string, string>): Promise<void>;
  /** A `node -e` health check with its `127.0.0.1:N` pointed at `to`: exits 0 on the live app, not on a dead port. */
  healthcheckWorks(t: Test, argv: string[], label: string, env?: (port: number) => Record<string, string>): Promise<void>;
}

/** One app on PGlite listening on loopback, and one run of the bundler, both cleaned up when `t` ends. */
export async function deployContext(t: Test): Promise<DeployContext> {
  const { database } = await testDatabase(t, 'pglite');
  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const deadPort = await freePort();
  const buildScripts = [...(pkg.scripts.build ?? '').matchAll(/node (scripts\/\S+\.mjs)/g)].map((m) => m[1] ?? '');
  const build = buildOutputs(t, dockerfile(), buildScripts);
  const built = build.files;
  const image = dockerImage(built);

  async function serves(t: Test, path: string | undefined, label: string, headers: Record<string, string> = {}): Promise<void> {
    const response = await app.inject({ method: 'GET', url: path ?? '/-no-path-', headers });
    t.equal(response.statusCode, 200, `${label}: the service answers GET ${path} with 200`);
  }

  async function healthcheckWorks(t: Test, argv: string[], label: string, env: (port: number) => Record<string, string> = () => ({})): Promise<void> {
    const aimed = (to: number) => argv.map((arg) => arg.replace(/127\.0\.0\.1:\d+/g, `127.0.0.1:${to}`));
    t.equal(await runHealthcheck(aimed(port), env(port)), 0, `${label}: passes against a running service`);
    t.not(await runHealthcheck(aimed(deadPort), env(deadPort)), 0, `${label}: fails when nothing answers`);
  }

  return { buildScripts, build, built, image, serves, healthcheckWorks };
}
