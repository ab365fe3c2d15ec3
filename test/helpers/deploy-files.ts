/**
 * Readers for the deployment files (deploy/Dockerfile, docker-compose.yml, deploy/haproxy.cfg,
 * k8s/*.yaml, .dockerignore), the build's real output, and the health-check commands the files
 * run, for the deployment suites (test/suites/deploy-*.ts). No container engine: files are
 * parsed, commands are run with this Node against a listener of the test's own.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, type Dirent } from 'node:fs';
import { isBuiltin } from 'node:module';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { tempDir } from './app.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
export const exists = (path: string): boolean => existsSync(join(ROOT, path));

// Parsed YAML and the like, read field by field and asserted by the tests.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped manifests
export type Doc = Record<string, any>;

/** Seconds from a duration: compose (`20s`, `1m30s`), HAProxy (`1h`, `60s`, bare = ms). */
export function seconds(value: string | number, bareUnit: 's' | 'ms' = 's'): number {
  if (typeof value === 'number') return bareUnit === 'ms' ? value / 1000 : value;
  const units: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600, d: 86400 };
  if (/^\d+$/.test(value)) return Number(value) / (bareUnit === 'ms' ? 1000 : 1);
  let total = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+(?:\.\d+)?)(us|ms|s|m|h|d)/g)) total += Number(amount) * (units[unit ?? 's'] ?? NaN);
  return total;
}

/** Compose's interpolation: `${NAME:-default}`, `${NAME:?error}`, `${NAME}`, `$$`. */
export function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\{(\w+)(?::?([-?])([^}]*))?\}/g, (whole, name?: string, kind?: string, rest?: string) => {
    if (whole === '$$') return '$';
    const set = name ? env[name] : undefined;
    if (set !== undefined && set !== '') return set;
    if (kind === '-') return rest ?? '';
    throw new Error(`${name} must be set: ${rest}`);
  });
}

/** The variables a compose file interpolates from the operator's shell. */
export const interpolated = (text: string): string[] =>
  [...new Set([...text.matchAll(/(?<!\$)\$\{(\w+)/g)].map((m) => m[1] ?? ''))].sort();

export interface Instruction {
  stage: number;
  keyword: string;
  args: string;
}

/** Dockerfile instructions (continuations joined, comments dropped), numbered by stage. */
export function dockerfile(path = 'deploy/Dockerfile'): Instruction[] {
  const text = read(path).replace(/\\\n/g, ' ');
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

/** What the image is made of: its stages, the runtime stage's settings, and its files from the build. */
export interface DockerImage {
  steps: Instruction[];
  /** The FROM instructions, one per stage. */
  stages: Instruction[];
  runtime: number;
  /** The stage that runs `npm run build`. */
  buildStage: number;
  args(stage: number, keyword: string): string[];
  /** The stage's working directory (its last WORKDIR; the image has one per stage). */
  workdir(stage: number): string;
  /** The runtime stage's ENV. */
  env: Record<string, string>;
  /** Absolute paths, in the runtime stage, of the files the build wrote and the stage copied. */
  builtFiles: Set<string>;
  /** The script a `node <script>` command would run in the image, or undefined. */
  script(argv: string[], workdir?: string): string | undefined;
}

export function dockerImage(built: BuiltFile[], path = 'deploy/Dockerfile'): DockerImage {
  const steps = dockerfile(path);
  const stages = steps.filter((s) => s.keyword === 'FROM');
  const runtime = stages.length - 1;
  const names = stages.map((from) => /\bAS\s+(\S+)/i.exec(from.args)?.[1]);
  const args = (stage: number, keyword: string) => steps.filter((s) => s.stage === stage && s.keyword === keyword).map((s) => s.args);
  const workdir = (stage: number) => args(stage, 'WORKDIR').at(-1) ?? '/';
  const buildStage = steps.find((s) => s.keyword === 'RUN' && /\bnpm run build\b/.test(s.args))?.stage ?? -1;
  const env = Object.fromEntries(
    args(runtime, 'ENV').flatMap((line) => [...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1] ?? '', m[2] ?? ''])),
  );
  const written = built.map((file) => inContainer(workdir(buildStage), file.path));
  const builtFiles = new Set<string>();
  for (const copy of args(runtime, 'COPY').map(copyParts)) {
    if (copy.from === undefined || (copy.from !== names[buildStage] && copy.from !== String(buildStage))) continue;
    for (const source of copy.sources.map((part) => inContainer(workdir(buildStage), part))) {
      for (const file of written.filter((file) => file === source || file.startsWith(`${source}/`))) {
        builtFiles.add(inContainer(workdir(runtime), copy.destination) + file.slice(source.length));
      }
    }
  }
  const script = (argv: string[], dir = workdir(runtime)) => (argv[0] === 'node' && argv[1] ? inContainer(dir, argv[1]) : undefined);
  return { steps, stages, runtime, buildStage, args, workdir, env, builtFiles, script };
}

/** COPY sources and destination, without flags. */
export function copyParts(args: string): { from?: string; sources: string[]; destination: string } {
  const parts = args.split(/\s+/);
  const from = parts.find((part) => part.startsWith('--from='))?.slice('--from='.length);
  const paths = parts.filter((part) => !part.startsWith('--'));
  return { ...(from ? { from } : {}), sources: paths.slice(0, -1), destination: paths.at(-1) ?? '' };
}

/** An absolute container path from a WORKDIR and a path that may be relative. */
export const inContainer = (workdir: string, path: string): string =>
  (path.startsWith('/') ? path : `${workdir.replace(/\/$/, '')}/${path.replace(/^\.\//, '')}`).replace(/\/$/, '');

/** .dockerignore patterns (`*`, exact paths, `name.*`), as the build context filter applies them. */
export function dockerIgnored(path: string, patterns: string[]): boolean {
  const clean = path.replace(/^\.\//, '').replace(/\/$/, '');
  return patterns.some((pattern) => {
    const glob = new RegExp(`^${pattern.replace(/\/$/, '').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/.*)?$`);
    return glob.test(clean);
  });
}

/** HAProxy config lines, comments dropped. */
export function haproxyLines(path: string): string[] {
  return read(path).split('\n').map((line) => line.replace(/#.*/, '').trim()).filter(Boolean);
}

/** Every document of every YAML file under k8s/ (folders included), by path under k8s/ (`deployment.yaml`, `migrate/job.yaml`). */
export function k8sDocuments(): Map<string, Doc[]> {
  const files = new Map<string, Doc[]>();
  const yamlFiles = (readdirSync(join(ROOT, 'k8s'), { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((entry) => entry.isFile() && entry.name.endsWith('.yaml'))
    .map((entry) => relative(join(ROOT, 'k8s'), join(entry.parentPath, entry.name)))
    .sort();
  for (const file of yamlFiles) {
    const docs = parseAllDocuments(read(`k8s/${file}`)).map((doc) => {
      if (doc.errors.length > 0) throw new Error(`k8s/${file}: ${doc.errors[0]?.message}`);
      return doc.toJS() as Doc;
    });
    files.set(file, docs.filter(Boolean));
  }
  return files;
}

/**
 * The manifest files a kustomization under k8s/ (`''` for the base, `migrate`, …) applies,
 * as paths under k8s/, following the kustomizations it lists as resources (`../config`).
 */
export function kustomizedFiles(files: Map<string, Doc[]>, dir: string): string[] {
  const kustomization = files.get(join(dir, 'kustomization.yaml'))?.[0];
  if (!kustomization) throw new Error(`k8s/${dir}: no kustomization.yaml`);
  return ((kustomization.resources ?? []) as string[]).flatMap((resource) => {
    const path = join(dir, resource);
    return files.has(join(path, 'kustomization.yaml')) ? kustomizedFiles(files, path) : [path];
  });
}

/** Longer than any answer of the app, far shorter than tap's timeout: a hung check fails, not the file. */
const HEALTHCHECK_TIMEOUT_MS = 10_000;

const PACKAGE_NAME = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(\/[\w./-]*)?$/;

/** One file the build's bundling steps wrote, with the bare imports it leaves to node_modules. */
export interface BuiltFile {
  path: string;
  packages: string[];
}

/**
 * Runs the build's bundling steps (`node scripts/….mjs` of `npm run build`, unchanged) in a
 * scratch build stage that holds only what the Dockerfile's build stage copies (files copied,
 * folders linked, node_modules linked as `npm ci` would provide it), and returns every file
 * they wrote under dist/, and the errors of the steps that failed. The real dist/ is left alone;
 * a step that needs a file the stage does not copy fails here as it would in `docker build`.
 */
export function buildOutputs(
  t: { teardown(fn: () => unknown): void },
  steps: Instruction[],
  scripts: string[],
): { files: BuiltFile[]; errors: string[] } {
  const stage = steps.find((s) => s.keyword === 'RUN' && /\bnpm run build\b/.test(s.args))?.stage;
  const sandbox = tempDir(t, 'chat-build-');
  symlinkSync(join(ROOT, 'node_modules'), join(sandbox, 'node_modules'));
  for (const copy of steps.filter((s) => s.stage === stage && s.keyword === 'COPY').map((s) => copyParts(s.args))) {
    if (copy.from) continue;
    const intoFolder = copy.destination.endsWith('/') || copy.sources.length > 1;
    for (const source of copy.sources) {
      const target = join(sandbox, intoFolder ? join(copy.destination, basename(source)) : copy.destination);
      mkdirSync(dirname(target), { recursive: true });
      // Scripts are copied, never linked: they find the project root from their own path.
      if (statSync(join(ROOT, source)).isDirectory()) symlinkSync(join(ROOT, source), target);
      else copyFileSync(join(ROOT, source), target);
    }
  }
  const errors: string[] = [];
  for (const script of scripts) {
    try {
      execFileSync(process.execPath, [join(sandbox, script)], { cwd: sandbox, stdio: 'pipe' });
    } catch (error) {
      errors.push(`${script}: ${(error as { stderr?: Buffer }).stderr?.toString().trim() || String(error)}`);
    }
  }
  const dist = join(sandbox, 'dist');
  const written = existsSync(dist) ? (readdirSync(dist, { recursive: true, withFileTypes: true }) as Dirent[]).filter((entry) => entry.isFile()) : [];
  const files = written.map((entry) => {
    const path = relative(sandbox, join(entry.parentPath, entry.name));
    const code = readFileSync(join(sandbox, path), 'utf8');
    const specifiers = [...code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\b(?:__)?require\s*\(\s*)["']([^"']+)["']/g)].map((m) => m[1] ?? '');
    const packages = path.endsWith('.js')
      ? specifiers.filter((specifier) => PACKAGE_NAME.test(specifier) && !isBuiltin(specifier)).map((specifier) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/'))
      : [];
    return { path, packages: [...new Set(packages)].sort() };
  });
  return { files, errors };
}

/**
 * Runs a health-check command (`node -e …`) with this Node; its exit code. Asynchronous: the
 * service it checks may be listening in this very process.
 */
export async function runHealthcheck(argv: string[], env: Record<string, string> = {}): Promise<number | null> {
  if (argv[0] !== 'node') throw new Error(`not a node command: ${argv.join(' ')}`);
  const child = spawn(process.execPath, argv.slice(1), { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore', timeout: HEALTHCHECK_TIMEOUT_MS });
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

/** The argv of a Dockerfile exec-form instruction (`CMD ["node", …]`) or compose `test`. */
export function execForm(value: string | string[]): string[] {
  const argv = typeof value === 'string' ? (JSON.parse(value) as string[]) : value;
  return argv[0] === 'CMD' ? argv.slice(1) : argv;
}
