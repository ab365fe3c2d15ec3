// Bundles the two process entry points (dist/server.js, dist/migrate.js) over tsc's output,
// with drizzle-orm and postgres inlined and every other dependency left to node_modules. Why
// drizzle-orm: on Node 24, resolving its few hundred internal imports re-reads its 180 KB
// package.json each time; a replica started at about 280 MB RSS from that garbage, and at
// about 120 MB bundled (and starts in half the time). Why postgres: the driver carries a fix
// of ours (patches/, applied by patch-package on `npm ci`), and the image's runtime stage
// installs with --ignore-scripts, so the bundle is what brings the patched driver there.
// tsc's per-file output stays for the client library and tools.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { dependencies } = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
const INLINED = new Set(['drizzle-orm', 'postgres']);
const external = Object.keys(dependencies)
  .filter((name) => !INLINED.has(name))
  .flatMap((name) => [name, `${name}/*`]);

await Promise.all(
  ['server', 'migrate'].map((entry) =>
    build({
      entryPoints: [`${root}src/${entry}.ts`],
      outfile: `${root}dist/${entry}.js`,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node24',
      external,
      sourcemap: true,
      logLevel: 'warning',
    }),
  ),
);
