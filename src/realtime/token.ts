import type { FastifyRequest } from 'fastify';

/** A socket's token: `?token=` (browsers cannot set headers) or `Authorization: Bearer`. */
export function tokenOf(request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown>;
  if (typeof query.token === 'string' && query.token) return query.token;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  return match?.[1];
}
