import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../project-root.js';

/** `npm run build` bundles the web client here. */
export const WEB_ROOT = join(PROJECT_ROOT, 'dist', 'web');

/**
 * The web client at `/`: the page, its script and stylesheet, each a route of its own (no
 * wildcard, so unknown paths stay the API's JSON 404s).
 */
export const webClientPlugin = fp(
  async (app: FastifyInstance) => {
    if (!existsSync(WEB_ROOT)) {
      app.log.warn({ root: WEB_ROOT }, 'web client not built (npm run build): / serves nothing');
      return;
    }
    await app.register(fastifyStatic, {
      root: WEB_ROOT,
      wildcard: false,
      index: 'index.html',
      // Swagger UI registers its own static instance, which owns reply.sendFile.
      decorateReply: false,
      // The bundle's name does not change between releases: browsers revalidate (ETag) each load.
      cacheControl: true,
      maxAge: 0,
      schemaHide: true,
    });
  },
  { name: 'web-client' },
);
