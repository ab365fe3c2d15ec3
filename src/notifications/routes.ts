import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { BigId } from '../contract/common.js';
import { errors } from '../http/schemas.js';
import { NotificationQuery } from '../contract/notifications.js';

export const notificationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/notifications/',
    {
      schema: {
        tags: ['notifications'],
        querystring: NotificationQuery,
        response: { 200: Type.Array(Type.Ref('Notification')), ...errors(400, 401) },
      },
    },
    async (request) => app.notifications.list(request.user.id, request.query),
  );

  app.post(
    '/notifications/read-all/',
    { schema: { tags: ['notifications'], response: { 200: Type.Object({ updated: Type.Integer() }), ...errors(401) } } },
    async (request) => ({ updated: await app.notifications.markAllRead(request.user.id) }),
  );

  app.post(
    '/notifications/:id/read/',
    {
      schema: {
        tags: ['notifications'],
        params: Type.Object({ id: BigId('notification id') }),
        response: { 200: Type.Ref('Notification'), ...errors(400, 401, 404) },
      },
    },
    async (request) => app.notifications.markRead(request.user.id, request.params.id),
  );
};
