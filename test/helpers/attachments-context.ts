/**
 * Shared set-up of the attachment suites (test/suites/attachments-*.ts), run on each storage
 * backend: one database per test file, and per test its own storage and its own app on a real
 * loopback listener, with two users in a conversation, an outsider, and a message to attach to.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { readdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import { createMemoryBus } from '../../src/bus/bus-memory.js';
import type { DatabaseHandle } from '../../src/db/client.js';
import { createStorage } from '../../src/storage/factory.js';
import type { Storage } from '../../src/storage/storage.js';
import { call, createConversation, register, type Session } from './api.js';
import { buildTestApp, tempDir, testDatabase, type DatabaseKind } from './app.js';
import { startS3Server } from './s3-server.js';

export type StorageKindUnderTest = 'local' | 's3';

export interface Backend {
  storage: Storage;
  /** Every key the backend holds, and any pending multipart upload. */
  objects(): Promise<string[]>;
  /** Resolves once every delete the app started has finished (removeStoredFiles is fire-and-forget). */
  deletesSettled(): Promise<void>;
}

export interface AttachmentContext {
  app: FastifyInstance;
  database: DatabaseHandle;
  backend: Backend;
  bus: ReturnType<typeof createMemoryBus>;
  /** http://127.0.0.1:<port> of the real listener. */
  base: string;
  alice: Session;
  bob: Session;
  /** Registered, but in no conversation with alice and bob. */
  outsider: Session;
  conversationId: number;
  messageId: number;
}

/**
 * What every attachment suite works with. Guarantees: `setup` gives each test a storage and an
 * app of its own (closed when that test ends) on the one database of the file, so what a test
 * finds in storage or in the attachments table of its conversation is its own.
 */
export interface AttachmentSuiteContext {
  kind: StorageKindUnderTest;
  setup(t: Test, env?: Record<string, string>): Promise<AttachmentContext>;
  /** The test title, prefixed with the backend. */
  name(title: string): string;
}

/** The suites' context on `kind` storage and a `databaseKind` database shared by the file's tests (under `root`). */
export function attachmentSuiteContext(root: Test, kind: StorageKindUnderTest, databaseKind: DatabaseKind): AttachmentSuiteContext {
  async function makeBackend(t: Test): Promise<Backend> {
    if (kind === 'local') {
      const dir = tempDir(t, 'attachments-local-');
      return tracked(createStorage({ kind: 'local', local: { dir } }), async () => {
        const entries = await readdir(dir, { recursive: true, withFileTypes: true });
        const files = entries.filter((entry) => !entry.isDirectory()).map((entry) => relative(dir, join(entry.parentPath, entry.name)));
        // An object's metadata twin is part of it; an orphaned one, or a temp file, is listed.
        const present = new Set(files);
        return files.filter((name) => !(name.endsWith('.meta.json') && present.has(name.slice(0, -'.meta.json'.length)))).sort();
      });
    }
    const server = await startS3Server(t);
    const s3 = server.storageOptions;
    const probe = new S3Client({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server });
    t.teardown(() => probe.destroy());
    return tracked(createStorage({ kind: 's3', s3 }), async () => {
      const objects = await probe.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
      const uploads = await probe.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket }));
      return [
        ...(objects.Contents ?? []).map((object) => object.Key ?? '?').sort(),
        ...(uploads.Uploads ?? []).map((upload) => `pending upload for ${upload.Key}`),
      ];
    });
  }

  // One database for the file (each test makes its own users and conversation); storage and
  // app are per test, so what a test finds in storage is its own.
  let sharedDatabase: Promise<DatabaseHandle> | undefined;
  const suiteDatabase = () => (sharedDatabase ??= testDatabase(root, databaseKind).then(({ database }) => database));

  async function setup(t: Test, env: Record<string, string> = {}): Promise<AttachmentContext> {
    const database = await suiteDatabase();
    const backend = await makeBackend(t);
    t.teardown(() => backend.storage.close());
    const bus = createMemoryBus();
    const app = await buildTestApp(t, { database, bus, storage: backend.storage, env });
    await app.listen({ port: 0, host: '127.0.0.1' });
    // Client and server share this process, so fetch() can hand a test the whole body before
    // the server has seen its response finish. Closing then would find that keep-alive socket
    // busy and leave it open until keepAliveTimeout; teardown (LIFO: before app.close) waits
    // for every exchange to end. A request body the server left unread never ends, so a test
    // that leaves one behind times out here: that is a real leak, not a test artefact.
    const busy = new Set<object>();
    let quiet: (() => void) | undefined;
    app.server.on('request', (req, res) => {
      const exchange = {};
      busy.add(exchange);
      let open = 2;
      const done = () => {
        if (--open > 0) return;
        busy.delete(exchange);
        if (busy.size === 0) quiet?.();
      };
      res.once('close', done);
      req.once('close', done);
    });
    t.teardown(() => (busy.size === 0 ? undefined : new Promise<void>((resolve) => (quiet = resolve))));
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const [alice, bob, outsider] = [await register(app), await register(app), await register(app)];
    const conversationId = await createConversation(app, alice, [bob]);
    const sent = await call(app, 'POST', `/api/conversations/${conversationId}/messages/`, {
      token: alice.token,
      body: { content: 'see attached' },
    });
    return { app, database, backend, bus, base, alice, bob, outsider, conversationId, messageId: sent.json.id };
  }

  return { kind, setup, name: (title) => `${kind}: ${title}` };
}

/** A storage whose deletes can be awaited (the app starts them without waiting). */
function tracked(storage: Storage, objects: () => Promise<string[]>): Backend {
  const pending = new Set<Promise<unknown>>();
  return {
    objects,
    storage: {
      ...storage,
      delete(key) {
        const deletion = storage.delete(key);
        pending.add(deletion);
        void deletion.finally(() => pending.delete(deletion)).catch(() => {});
        return deletion;
      },
    },
    async deletesSettled() {
      await Promise.allSettled([...pending]);
    },
  };
}
