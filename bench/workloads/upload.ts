/**
 * upload: memory while a large attachment streams in, measured by bench/upload-memory.ts
 * (its own module, written separately). Loaded at run time so that the bench works, and
 * type-checks, whether or not that file exists yet.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { log } from '../lib/log.js';

const MODULE = new URL('../upload-memory.ts', import.meta.url);

export type UploadResult = { file_mb: number; peak_rss_growth_mb: number; ok: boolean; [extra: string]: unknown } | { skipped: string };

type Measure = (options: { sizeMb: number }) => Promise<unknown>;

export async function uploadWorkload(sizeMb: number, module: URL = MODULE): Promise<UploadResult> {
  if (!existsSync(fileURLToPath(module))) {
    log('upload: bench/upload-memory.ts missing: skipped');
    return { skipped: 'bench/upload-memory.ts missing' };
  }
  const loaded = (await import(module.href)) as { measureUploadMemory?: unknown };
  if (typeof loaded.measureUploadMemory !== 'function') throw new Error('bench/upload-memory.ts does not export measureUploadMemory');
  log(`upload: measureUploadMemory({ sizeMb: ${sizeMb} })`);
  const result = await (loaded.measureUploadMemory as Measure)({ sizeMb });
  if (
    typeof result !== 'object' || result === null ||
    typeof (result as { file_mb?: unknown }).file_mb !== 'number' ||
    typeof (result as { peak_rss_growth_mb?: unknown }).peak_rss_growth_mb !== 'number' ||
    typeof (result as { ok?: unknown }).ok !== 'boolean'
  ) {
    throw new Error(`measureUploadMemory returned ${JSON.stringify(result)?.slice(0, 200)}, expected { file_mb, peak_rss_growth_mb, ok }`);
  }
  return result as UploadResult;
}
