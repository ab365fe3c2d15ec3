// Bundles the web client (src/web, using @chat-service/client) into dist/web: one ES module, its
// stylesheet and page. Part of `npm run build`, after the client package's own build: the
// package resolves through its workspace link to packages/client/dist, the code it publishes.
// The service serves dist/web at `/`.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/web`;
await mkdir(out, { recursive: true });
await build({
  entryPoints: [`${root}src/web/main.ts`],
  outfile: `${out}/app.js`,
  bundle: true,
  format: 'esm',
  target: 'es2022',
  platform: 'browser',
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
});
await Promise.all(['index.html', 'app.css'].map((file) => copyFile(`${root}src/web/${file}`, `${out}/${file}`)));
