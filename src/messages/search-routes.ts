import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { SearchQuery } from '../contract/messages.js';
import { errors } from '../http/schemas.js';
import { searchMessages } from './search.js';

export const searchRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/search/',
    {
      schema: {
        tags: ['messages'],
        summary: 'messages of your conversations holding every word of q, newest first',
        description:
          'Case-insensitive, Persian and Latin alike (Arabic yeh/kaf, diacritics, tatweel and zero-width non-joiners do not matter); ' +
          'the last word of three or more characters also matches as a prefix. A page may hold fewer than `limit` messages ' +
          '(each examines a bounded part of the index): follow `Link: rel="next"` until it is absent.',
        querystring: SearchQuery,
        response: { 200: Type.Array(Type.Ref('Message')), ...errors(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const { q, conversation_id: conversationId, limit, before } = request.query;
      const page = await searchMessages(app.database, app.links, request.user.id, { q, conversationId, limit, before });
      if (page.nextBefore !== null) {
        const next = new URLSearchParams({ q, limit: String(limit), before: String(page.nextBefore) });
        if (conversationId !== undefined) next.set('conversation_id', String(conversationId));
        reply.header('link', `<${app.config.PUBLIC_URL}/api/search/?${next.toString()}>; rel="next"`);
      }
      return page.messages;
    },
  );
};
