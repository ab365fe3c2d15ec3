import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Bus } from '../bus/bus.js';
import type { RetryingPublisher } from '../bus/publish-retry.js';
import type { Config } from '../config.js';
import type { Database, DatabaseHandle } from '../db/client.js';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import type { WritePath } from '../messages/write-path.js';
import type { Storage } from '../storage/storage.js';

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
    database: DatabaseHandle;
    /** drizzle on either driver. */
    db: Database;
    bus: Bus;
    /** Durable events' publishes, retried until they go through. */
    publisher: RetryingPublisher;
    storage: Storage;
    links: AttachmentLinkSigner;
    writePath: WritePath;
    /** Deletes objects whose rows are gone; failures are logged (an orphan costs bytes, not data). */
    removeStoredFiles(keys: string[]): void;
    /** `draining` turns true on SIGTERM or close: readiness fails first, new work goes elsewhere. */
    lifecycle: { draining: boolean };
  }
}

export interface Infrastructure {
  config: Config;
  database: DatabaseHandle;
  bus: Bus;
  storage: Storage;
  /** Parts this app created and so must close; parts handed in by a caller stay open. */
  owned: { close(): Promise<void> }[];
}

/**
 * Closes every part in order; one that throws is logged and the rest are still closed (a
 * failing Redis quit must not leave the database pool open and the process hanging).
 */
export async function closeAll(parts: { close(): Promise<void> }[], log: { error(obj: unknown, msg?: string): void }): Promise<void> {
  for (const part of parts) {
    try {
      await part.close();
    } catch (error) {
      log.error({ err: error }, 'closing a part failed; closing the others');
    }
  }
}

/** Shared decorators for every feature plugin; the backends themselves never see Fastify. */
export const infrastructurePlugin = fp<Infrastructure>(
  async (app: FastifyInstance, { config, database, bus, storage, owned }) => {
    app.decorate('config', config);
    app.decorate('database', database);
    app.decorate('db', database.db);
    app.decorate('bus', bus);
    app.decorate('storage', storage);
    app.decorate('removeStoredFiles', (keys: string[]) => {
      for (const key of keys) {
        storage.delete(key).catch((error: unknown) => app.log.warn({ err: error, key }, 'stored file not removed'));
      }
    });
    app.decorate('lifecycle', { draining: false });
    app.addHook('preClose', async () => {
      app.lifecycle.draining = true;
    });
    if (config.MIGRATE_ON_START) await database.migrate();
    // Storage is not part of readiness (one bucket serves every pod: a blip there must not take
    // every pod out of the load balancer), so a wrong bucket or credentials is said here, once.
    void storage.ping().then((reachable) => {
      if (!reachable) app.log.warn('storage: the attachment store does not answer; uploads and downloads will fail until it does');
    });
    app.addHook('onClose', async () => closeAll([...owned].reverse(), app.log));
  },
  { name: 'infrastructure' },
);
