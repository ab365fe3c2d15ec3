import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../project-root.js';

/**
 * The web client at `/`: the page, its script and stylesheet, each a route of its own (no
 * wildcard, so unknown paths stay the API's JSON 404s).
 */
export const webClientPlugin = fp(
  async (app: FastifyInstance) => {
    // `npm run build` bundles the web client here.
    const webRoot = join(projectRoot(), 'dist', 'web');
    if (!existsSync(webRoot)) {
      app.log.warn({ root: webRoot }, 'web client not built (npm run build): / serves nothing');
      return;
    }
    await app.register(fastifyStatic, {
      root: webRoot,
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
