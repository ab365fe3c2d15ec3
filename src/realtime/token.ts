import type { FastifyRequest } from 'fastify';
import { bearerToken } from '../auth/bearer.js';

/** A socket's token: `?token=` (browsers cannot set headers) or `Authorization: Bearer`. */
export function tokenOf(request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown>;
  if (typeof query.token === 'string' && query.token) return query.token;
  return bearerToken(request.headers.authorization);
}
