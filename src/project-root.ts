import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder holding package.json, found from this module's own location: the same answer
 * from src/ (tsx), from tsc's dist/ tree and from the bundled dist/server.js, which sit at
 * different depths. Files the service reads at run time (migrations, the web bundle) are
 * named relative to it. Looked up when asked (a few stat calls), not at import.
 */
export function projectRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}
