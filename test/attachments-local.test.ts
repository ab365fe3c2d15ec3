import { attachmentSuite } from './suites/attachments.js';

// Local disk storage in a temp dir, embedded PGlite.
attachmentSuite('local', 'pglite');
