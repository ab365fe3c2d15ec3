import cors from '@fastify/cors';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';
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
 * The CSP is helmet's default, which the JSON API does not need and the web client at `/` and
 * the Swagger UI at `/docs` work under (their scripts and styles are files served from 'self'), without
 * `upgrade-insecure-requests`: behind a plain-HTTP load balancer (docker compose) it would
 * send the UI's own assets to an https:// URL that does not exist. Attachment bytes set a
 * stricter CSP of their own. With CORS origins configured, resources may be embedded across
 * origins (an `<img>` of an attachment's signed link in a web client); otherwise same-origin.
 */
export const securityPlugin = fp<{ corsOrigin: string | undefined; publicUrl: string; mediaOrigins?: string[] }>(
  async (app: FastifyInstance, { corsOrigin, publicUrl, mediaOrigins = [] }) => {
    const origins = corsOrigins(corsOrigin);
    // With S3_SERVE_MODE=redirect an attachment link answers 302 to the bucket's origin: the
    // page must be allowed to show (img, media) and fetch (connect) what it redirects to.
    const media: Record<string, string[]> = mediaOrigins.length > 0 ? { mediaSrc: ["'self'", ...mediaOrigins], connectSrc: ["'self'", ...mediaOrigins] } : {};
    const headers = helmetHeaders({
      contentSecurityPolicy: {
        useDefaults: true,
        directives: {
          upgradeInsecureRequests: null,
          // The web client shows attachments by their signed links, which live on PUBLIC_URL
          // (a page may be served under another name than that), and previews picked files as blob: URLs.
          imgSrc: ["'self'", 'data:', 'blob:', new URL(publicUrl).origin, ...mediaOrigins],
          ...media,
        },
      },
      crossOriginResourcePolicy: { policy: origins.length > 0 ? 'cross-origin' : 'same-origin' },
    });
    app.addHook('onRequest', (_request, reply, done) => {
      reply.headers(headers);
      done();
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

/**
 * The headers helmet sets, computed once. Helmet's values are the point; its per-request
 * middleware is not: @fastify/helmet builds a new helmet (CSP parsing included) for every
 * request, which showed in profiles of the busiest reads. Our headers never vary by request.
 */
function helmetHeaders(options: HelmetOptions): Record<string, string> {
  // A real, unconnected response object records what helmet sets; nothing is sent.
  const request = new IncomingMessage(new Socket());
  const response = new ServerResponse(request);
  helmet(options)(request, response, (error?: unknown) => {
    if (error) throw error;
  });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.getHeaders())) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return headers;
}
