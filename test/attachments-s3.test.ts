import { attachmentSuite } from './suites/attachments.js';

// S3 against a real s3rver (signed requests enforced), PostgreSQL.
attachmentSuite('s3', 'postgres');
