/** What clients see (API.md's shapes, plus fields it allows adding), derived from the event schemas. */
export type { AttachmentView, ConversationEvent, MessageView } from '../realtime/events.js';
