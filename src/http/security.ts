import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

/** Headers a browser client on another origin may read: request ids, pagination, back-off, file names. */
const EXPOSED_HEADERS = ['x-request-id', 'link', 'retry-after', 'content-disposition', 'content-range'];

/** `CORS_ORIGIN` is a comma-separated list of exact origins; blanks are ignored. */
export const corsOrigins = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((origin) => origin.trim().replace(/\/+$/, ''))
    .filter((origin) => origin !== '');

/**
 * Security headers on every response (helmet) and, when `CORS_ORIGIN` is set, CORS for those
 * origins only; unset, no CORS headers at all (same origin only).
 *
 * The CSP is helmet's default, which the JSON API does not need and the Swagger UI at `/docs`
 * works under (its scripts and styles are files served from 'self'), without
 * `upgrade-insecure-requests`: behind a plain-HTTP load balancer (docker compose) it would
 * send the UI's own assets to an https:// URL that does not exist. Attachment bytes set a
 * stricter CSP of their own. With CORS origins configured, resources may be embedded across
 * origins (an `<img>` of an attachment's signed link in a web client); otherwise same-origin.
 */
export const securityPlugin = fp<{ corsOrigin: string | undefined }>(
  async (app: FastifyInstance, { corsOrigin }) => {
    const origins = corsOrigins(corsOrigin);
    await app.register(helmet, {
      contentSecurityPolicy: { useDefaults: true, directives: { upgradeInsecureRequests: null } },
      crossOriginResourcePolicy: { policy: origins.length > 0 ? 'cross-origin' : 'same-origin' },
    });
    if (origins.length > 0) {
      await app.register(cors, {
        origin: origins,
        methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
        exposedHeaders: EXPOSED_HEADERS,
        // Bearer tokens, not cookies: credentialed requests are never needed.
        credentials: false,
        maxAge: 600,
      });
    }
  },
  { name: 'security' },
);
