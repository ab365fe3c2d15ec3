/**
 * upload-memory: does the server's memory grow with an attachment's size? (API.md: "Uploads
 * stream to storage: memory does not grow with file size".)
 *
 * Starts the real service as a child (`node --import=tsx src/server.ts`) on its embedded
 * defaults (PGlite and local files in a temp DATA_DIR, in-process bus), makes a user, a
 * conversation and a message, warms the upload path with a 1 MiB file, then streams a
 * generated file of `sizeMb` MiB (produced chunk by chunk, never held in memory here) as
 * multipart/form-data, reading the child's VmRSS from /proc every 50 ms. Reports the peak
 * over the baseline taken just before the big upload; `ok` when the upload was stored whole
 * and the growth stayed under 64 MiB.
 *
 *   node --import=tsx bench/upload-memory.ts [sizeMb]     # prints the JSON result
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort } from './stack/ports.js';

const MiB = 1024 * 1024;
const GROWTH_LIMIT_MB = 64;
const SAMPLE_MS = 50;
const CHUNK_BYTES = 64 * 1024;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface UploadMemoryResult {
  file_mb: number;
  peak_rss_growth_mb: number;
  ok: boolean;
  baseline_rss_mb: number;
  peak_rss_mb: number;
  /** VmHWM (the kernel's own peak RSS) before vs after: no sampling gaps; 0 when the upload never passed an earlier peak. */
  vm_hwm_growth_mb: number;
  status: number;
  stored_bytes: number | null;
  seconds: number;
  mb_per_s: number;
}

export async function measureUploadMemory(options: { sizeMb: number }): Promise<UploadMemoryResult> {
  const size = Math.round(options.sizeMb * MiB);
  const dataDir = await mkdtemp(join(tmpdir(), 'chat-upload-memory-'));
  const port = await freePort();
  const child = startServer(port, dataDir, size);
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitReady(base, child);
    const target = await setUp(base);

    // Warm-up: code that loads on first use (multipart parser, file-type) is not file-size growth.
    const warm = await upload(target.url, target.token, MiB);
    if (warm.status !== 201) throw new Error(`warm-up upload failed: ${warm.status} ${warm.body}`);

    const baseline = await medianRss(child.pid ?? 0, 10);
    const hwmBefore = await readStatusKb(child.pid ?? 0, 'VmHWM');
    let peak = baseline;
    const sampler = setInterval(() => {
      void readRss(child.pid ?? 0).then((rss) => {
        if (rss > peak) peak = rss;
      }, () => {});
    }, SAMPLE_MS);
    const started = performance.now();
    let result: { status: number; body: string };
    try {
      result = await upload(target.url, target.token, size);
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - started) / 1000;
    peak = Math.max(peak, await readRss(child.pid ?? 0));
    const hwmAfter = await readStatusKb(child.pid ?? 0, 'VmHWM');

    const stored = result.status === 201 ? (JSON.parse(result.body) as { size?: unknown }).size : null;
    const growthMb = (peak - baseline) / MiB;
    return {
      file_mb: round(size / MiB),
      peak_rss_growth_mb: round(growthMb),
      ok: result.status === 201 && stored === size && growthMb < GROWTH_LIMIT_MB,
      baseline_rss_mb: round(baseline / MiB),
      peak_rss_mb: round(peak / MiB),
      vm_hwm_growth_mb: round((hwmAfter - hwmBefore) / MiB),
      status: result.status,
      stored_bytes: typeof stored === 'number' ? stored : null,
      seconds: round(seconds),
      mb_per_s: round(size / MiB / seconds),
    };
  } finally {
    await stopServer(child);
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** The service on its embedded defaults: nothing inherited that would point it elsewhere. */
function startServer(port: number, dataDir: string, size: number): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'REDIS_CLUSTER', 'S3_BUCKET', 'S3_ENDPOINT', 'PUBLIC_URL', 'MIGRATE_ON_START']) delete env[name];
  Object.assign(env, {
    NODE_ENV: 'production',
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    JWT_SECRET: randomBytes(24).toString('base64url'),
    LOG_LEVEL: 'warn',
    MAX_ATTACHMENT_BYTES: String(size + MiB),
    AUTH_RATE_LIMIT: '0',
    MESSAGE_RATE_LIMIT: '0',
  });
  const child = spawn(process.execPath, ['--import=tsx', 'src/server.ts'], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM') process.stderr.write(`[upload-memory] server exited (${code ?? signal}):\n${stderr}\n`);
  });
  // A bench killed mid-run must not leave the server behind.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  return child;
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

async function waitReady(base: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before it was ready`);
    const ready = await fetch(`${base}/readyz`).then((res) => res.ok, () => false);
    if (ready) return;
    await delay(200);
  }
  throw new Error('server not ready within 60 s');
}

/** Two users, a conversation and one message from the first; returns where to upload. */
async function setUp(base: string): Promise<{ token: string; url: string }> {
  const json = async (path: string, body: unknown, token?: string) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const suffix = randomBytes(4).toString('hex');
  const alice = await json('/api/auth/register/', { username: `up_a_${suffix}`, password: 'upload-memory-bench' });
  const bob = await json('/api/auth/register/', { username: `up_b_${suffix}`, password: 'upload-memory-bench' });
  const token = String(alice.token);
  const conversation = await json('/api/conversations/', { participants: [(bob.user as { id: number }).id] }, token);
  const message = await json(`/api/conversations/${conversation.id}/messages/`, { content: 'a big file' }, token);
  return { token, url: `${base}/api/conversations/${conversation.id}/messages/${message.id}/attachments/` };
}

/** Streams a multipart upload of `size` generated bytes with backpressure; nothing is buffered. */
async function upload(url: string, token: string, size: number): Promise<{ status: number; body: string }> {
  const boundary = `----upload-memory-${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  // One chunk of random bytes, sent over and over: the file never exists in memory here.
  const chunk = randomBytes(CHUNK_BYTES);
  async function* body(): AsyncGenerator<Buffer> {
    yield head;
    for (let sent = 0; sent < size; sent += CHUNK_BYTES) yield chunk.subarray(0, Math.min(CHUNK_BYTES, size - sent));
    yield tail;
  }
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': String(head.length + size + tail.length),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (part: string) => (text += part));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    pipeline(Readable.from(body()), req).catch(reject);
  });
}

/** VmRSS of a process, in bytes. */
const readRss = (pid: number): Promise<number> => readStatusKb(pid, 'VmRSS');

/** A `kB` field of /proc/<pid>/status, in bytes. */
async function readStatusKb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(status)?.[1];
  if (kb === undefined) throw new Error(`no ${field} for ${pid}`);
  return Number(kb) * 1024;
}

async function medianRss(pid: number, samples: number): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    values.push(await readRss(pid));
    await delay(SAMPLE_MS);
  }
  values.sort((a, b) => a - b);
  return values[Math.floor(values.length / 2)] ?? 0;
}

const round = (value: number) => Math.round(value * 10) / 10;

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const sizeMb = Number(process.argv[2] ?? 500);
  measureUploadMemory({ sizeMb }).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      process.exit(result.ok ? 0 : 1);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
