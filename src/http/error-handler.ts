import type { FastifyError, FastifyInstance } from 'fastify';
import { DomainError } from '../domain/errors.js';
import { errorBody, type HttpAnswer, httpAnswer, HttpError } from './errors.js';

/** Fastify's own refusals (validation, body too large, bad content type) carry a 4xx of their own. */
const fastifyRefusal = (error: FastifyError): HttpAnswer | undefined => {
  if (error instanceof HttpError || error instanceof DomainError) return undefined;
  if ('validation' in error && error.validation) return { status: 400, message: error.message, headers: {}, level: 'info' };
  const status = error.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return { status, message: error.message, headers: {}, level: 'info' };
  return undefined;
};

/**
 * Every error leaves in API.md's one shape. Client mistakes keep their 4xx and message;
 * a dependency that is down is a 503; anything else is logged with its stack and answered
 * with a bare 500 that names only the request id.
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const answer = fastifyRefusal(error) ?? httpAnswer(error);
    reply.headers(answer.headers);
    if (answer.level === 'error') request.log.error({ err: error }, 'unhandled error');
    else if (answer.level === 'warn') request.log.warn({ err: error }, 'dependency unavailable');
    else request.log.info({ status: answer.status, message: answer.message }, 'client error');
    return reply.code(answer.status).send(errorBody(answer.status, answer.message, request.id));
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(errorBody(404, `no route ${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`, request.id)),
  );
}
