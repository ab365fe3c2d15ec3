export * from './users.js';
export * from './conversations.js';
export * from './messages.js';
export * from './attachments.js';
export * from './notifications.js';
