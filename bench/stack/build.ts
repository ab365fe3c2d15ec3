/** `npm run build` when dist/server.js is missing or older than any file under src/. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { log } from '../lib/log.js';
import { runToCompletion } from './processes.js';

const BUILD_TIMEOUT_MS = 5 * 60_000;

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

function mtimeMs(file: string): number | null {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return null;
  }
}

export async function ensureBuilt(root: string): Promise<void> {
  const built = mtimeMs(join(root, 'dist', 'server.js'));
  const sources = newestMtimeMs(join(root, 'src'));
  if (built !== null && built >= sources) return;
  log(built === null ? 'dist/ is missing: npm run build' : 'src/ is newer than dist/: npm run build');
  await runToCompletion('npm', ['run', 'build'], root, BUILD_TIMEOUT_MS);
}
