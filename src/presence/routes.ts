import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Id } from '../contract/common.js';
import { PresenceListQuery } from '../contract/presence.js';
import { ConversationParams, errors } from '../http/schemas.js';

/** `GET /api/conversations/{id}/presence/` and `GET /api/users/{id}/presence/`. */
export const presenceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/conversations/:id/presence/',
    {
      schema: {
        tags: ['presence'],
        description:
          'The members\' status, paged by user id as `/members/` is (default 100, at most 1000; a `Link: <...>; rel="next"` header gives the next page). Members only (404 otherwise).',
        params: ConversationParams,
        querystring: PresenceListQuery,
        response: { 200: Type.Array(Type.Ref('Presence')), ...errors(400, 401, 404, 503) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const { members, hasMore } = await app.presence.list(request.user, id, request.query);
      const last = members.at(-1);
      if (hasMore && last) {
        reply.header('link', `<${app.config.PUBLIC_URL}/api/conversations/${id}/presence/?limit=${request.query.limit}&after=${last.user_id}>; rel="next"`);
      }
      return members;
    },
  );

  app.get(
    '/users/:id/presence/',
    {
      schema: {
        tags: ['presence'],
        description: 'One user\'s status: only for users who share a conversation with the caller (404 otherwise, as for one who does not exist).',
        params: Type.Object({ id: Id('user id') }),
        response: { 200: Type.Ref('Presence'), ...errors(400, 401, 404, 503) },
      },
    },
    async (request) => app.presence.ofUser(request.user, request.params.id),
  );
};
