import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ConversationParams, errors } from '../http/schemas.js';
import { AddMembers, ChangeRole, MemberListQuery, MemberParams } from '../contract/members.js';
import { getConversation } from './inbox.js';

/** `/api/conversations/{id}/members/`: the member list, adding, removing (leaving) and roles. */
export const memberRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/conversations/:id/members/',
    {
      schema: {
        tags: ['members'],
        description: 'Members by user id; a `Link: <...>; rel="next"` header gives the next page.',
        params: ConversationParams,
        querystring: MemberListQuery,
        response: { 200: Type.Array(Type.Ref('Member')), ...errors(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const { members, hasMore } = await app.membership.list(request.user, id, request.query);
      const last = members.at(-1);
      if (hasMore && last) {
        reply.header('link', `<${app.config.PUBLIC_URL}/api/conversations/${id}/members/?limit=${request.query.limit}&after=${last.id}>; rel="next"`);
      }
      return members;
    },
  );

  app.post(
    '/conversations/:id/members/',
    {
      config: { writeRateLimit: 'member' },
      schema: {
        tags: ['members'],
        description: 'Adds members (owner and admins; those already in are ignored); answers with the conversation.',
        params: ConversationParams,
        body: AddMembers,
        response: { 200: Type.Ref('Conversation'), ...errors(400, 401, 403, 404, 409, 429) },
      },
    },
    async (request) => {
      const { id } = request.params;
      const added = await app.membership.add(request.user, id, request.body.participants);
      const conversation = await getConversation(app.database, app.links, request.user, id);
      if (added.length > 0) {
        await app.notifications
          .conversationCreated(id, request.user, added.map((user) => user.id), conversation.participants)
          .catch((error: unknown) => request.log.warn({ err: error }, 'added-to-conversation notifications failed'));
      }
      return conversation;
    },
  );

  app.delete(
    '/conversations/:id/members/:user_id/',
    {
      config: { writeRateLimit: 'member' },
      schema: {
        tags: ['members'],
        description: 'Removes a member (owner and admins), or leaves (one\'s own id). Nobody removes the owner.',
        params: MemberParams,
        response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 409, 429) },
      },
    },
    async (request, reply) => {
      await app.membership.remove(request.user, request.params.id, request.params.user_id);
      return reply.code(204).send(null);
    },
  );

  app.patch(
    '/conversations/:id/members/:user_id/',
    {
      config: { writeRateLimit: 'member' },
      schema: {
        tags: ['members'],
        description: 'Makes a member admin or member again: the owner only.',
        params: MemberParams,
        body: ChangeRole,
        response: { 200: Type.Ref('Member'), ...errors(400, 401, 403, 404, 409, 429) },
      },
    },
    async (request) => app.membership.setRole(request.user, request.params.id, request.params.user_id, request.body.role),
  );
};
