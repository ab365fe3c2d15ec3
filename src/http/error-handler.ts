import type { FastifyError, FastifyInstance } from 'fastify';
import { errorBody, HttpError, isBadDataError, isUnavailableError } from './errors.js';

/**
 * Every error leaves in API.md's one shape. Client mistakes keep their 4xx and message;
 * a dependency that is down is a 503; anything else is logged with its stack and answered
 * with a bare 500 that names only the request id.
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    let status: number;
    let message: string;
    if (error instanceof HttpError) {
      status = error.statusCode;
      message = error.message;
      reply.headers(error.headers);
    } else if ('validation' in error && error.validation) {
      status = 400;
      message = error.message;
    } else if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      status = error.statusCode;
      message = error.message;
    } else if (isUnavailableError(error)) {
      status = 503;
      message = 'a dependency is unavailable, try again shortly';
      reply.header('retry-after', '5');
      request.log.warn({ err: error }, 'dependency unavailable');
    } else if (isBadDataError(error)) {
      status = 400;
      message = 'the request contains characters or numbers that cannot be stored';
      request.log.info({ err: error }, 'refused as bad data');
    } else {
      status = 500;
      message = 'internal error';
      request.log.error({ err: error }, 'unhandled error');
    }
    if (status >= 400 && status < 500) request.log.info({ status, message }, 'client error');
    return reply.code(status).send(errorBody(status, message, request.id));
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(errorBody(404, `no route ${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`, request.id)),
  );
}
