// `npm start` / `npm run migrate`: run the compiled service, building it first when dist/ is
// missing so that a fresh clone starts with `npm install && npm start`.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const entry = process.argv.includes('--migrate') ? 'dist/migrate.js' : 'dist/server.js';
const built = [entry, 'dist/web/index.html'].every((file) => existsSync(new URL(`../${file}`, import.meta.url)));
if (!built) {
  console.error('dist/ is missing: building once (npm run build)');
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
}
await import(new URL(`../${entry}`, import.meta.url).href);
