import { randomUUID } from 'node:crypto';
import { constants, createWriteStream, type WriteStream } from 'node:fs';
import { access, mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SizeLimit } from './size-limit.js';
import {
  ObjectNotFoundError,
  type ByteRange,
  type PutOptions,
  type Storage,
  type StoredObject,
} from './storage.js';

export interface LocalStorageOptions {
  /** Root directory; created on first write or ping. */
  dir: string;
}

/** Content type lives beside the object so the object file itself stays the raw bytes. */
const META_SUFFIX = '.meta.json';
const FALLBACK_CONTENT_TYPE = 'application/octet-stream';

export function createLocalStorage(options: LocalStorageOptions): Storage {
  const root = resolve(options.dir);

  return {
    async put(key: string, body: Readable, { contentType, maxBytes }: PutOptions) {
      const file = objectPath(root, key);
      await mkdir(dirname(file), { recursive: true });
      const tmpData = tempPath(file);
      const tmpMeta = tempPath(file + META_SUFFIX);
      const limit = new SizeLimit(maxBytes);
      // 'wx': the random temp name must never clobber anything.
      const out = createWriteStream(tmpData, { flags: 'wx' });
      let metaPlaced = false;
      try {
        await pipeline(body, limit, out);
        await writeFile(tmpMeta, JSON.stringify({ contentType }), { flag: 'wx' });
        // Meta first: a reader that can see the object can then always see its type.
        await rename(tmpMeta, file + META_SUFFIX);
        metaPlaced = true;
        await rename(tmpData, file);
        return { size: limit.bytes };
      } catch (err) {
        body.destroy();
        // A write stream destroyed before its open() finished still creates the file when
        // the open lands; wait for close so the unlink below cannot run first.
        await closed(out);
        await Promise.all([
          removeIfPresent(tmpData),
          removeIfPresent(tmpMeta),
          metaPlaced ? removeIfPresent(file + META_SUFFIX) : undefined,
        ]);
        throw err;
      }
    },

    async get(key: string, range?: ByteRange): Promise<StoredObject> {
      const file = objectPath(root, key);
      const handle = await open(file, 'r').catch((err: unknown) => {
        throw notFoundOr(err, key);
      });
      try {
        // Size comes from the open handle so it matches the bytes the stream will read,
        // even if the key is deleted or replaced meanwhile.
        const info = await handle.stat();
        if (!info.isFile()) throw new ObjectNotFoundError(key);
        const contentType = await readContentType(file);
        const body = handle.createReadStream(range ? { start: range.start, end: range.end } : {});
        return { body, size: info.size, contentType };
      } catch (err) {
        await handle.close();
        throw err;
      }
    },

    async delete(key: string) {
      const file = objectPath(root, key);
      // Object before meta: the reverse of put, so a visible object keeps its type.
      await removeIfPresent(file);
      await removeIfPresent(file + META_SUFFIX);
    },

    async presignedUrl() {
      return null;
    },

    async ping() {
      try {
        await mkdir(root, { recursive: true });
        await access(root, constants.R_OK | constants.W_OK | constants.X_OK);
        return true;
      } catch {
        return false;
      }
    },

    async close() {},
  };
}

/**
 * Maps a key to its file, refusing anything that could land outside `root` or collide with
 * the temp/meta files this backend writes. Keys are service-generated, so a refusal here is
 * a bug or an attack, never a user typo.
 */
function objectPath(root: string, key: string): string {
  const invalid = () => new Error(`invalid storage key ${JSON.stringify(key)}`);
  if (key.length === 0 || key.includes('\0') || key.includes('\\') || isAbsolute(key)) {
    throw invalid();
  }
  for (const segment of key.split('/')) {
    // Leading dots are reserved for temp files; this also rules out '.' and '..'.
    if (segment === '' || segment.startsWith('.')) throw invalid();
  }
  if (key.endsWith(META_SUFFIX)) throw invalid();
  const file = resolve(root, key);
  if (!file.startsWith(root + sep)) throw invalid();
  return file;
}

function tempPath(file: string): string {
  return join(dirname(file), `.${basename(file)}.${randomUUID()}.tmp`);
}

async function readContentType(file: string): Promise<string> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file + META_SUFFIX, 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'contentType' in parsed) {
      const { contentType } = parsed;
      if (typeof contentType === 'string') return contentType;
    }
    return FALLBACK_CONTENT_TYPE;
  } catch (err) {
    // Only reachable in a delete/crash window; octet-stream is the type browsers never render.
    if (isMissing(err)) return FALLBACK_CONTENT_TYPE;
    throw err;
  }
}

async function removeIfPresent(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}

async function closed(stream: WriteStream): Promise<void> {
  if (stream.closed) return;
  // Not events.once: that would reject on the 'error' the pipeline already reported.
  const done = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  if (!stream.destroyed) stream.destroy();
  await done;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function notFoundOr(err: unknown, key: string): unknown {
  return isMissing(err) ? new ObjectNotFoundError(key) : err;
}
