/**
 * Attachments end to end (API.md "Attachments"), run against each storage backend by
 * test/attachments-local.test.ts and test/attachments-s3.test.ts: a real listener, uploads and
 * downloads with fetch(), and the storage itself inspected to prove what is (not) kept. The
 * feature suites beside this file (attachments-*.ts) share one database per backend; each test
 * has its own storage and app (test/helpers/attachments-context.ts).
 */
import t from 'tap';
import type { DatabaseKind } from '../helpers/app.js';
import { attachmentSuiteContext, type StorageKindUnderTest } from '../helpers/attachments-context.js';
import { attachmentsAccessSuite } from './attachments-access.js';
import { attachmentsContentSuite } from './attachments-content.js';
import { attachmentsDeleteSuite } from './attachments-delete.js';
import { attachmentsDownloadSuite } from './attachments-download.js';
import { attachmentsUploadSuite } from './attachments-upload.js';

export function attachmentSuite(kind: StorageKindUnderTest, databaseKind: DatabaseKind): void {
  const context = attachmentSuiteContext(t, kind, databaseKind);
  attachmentsUploadSuite(t, context);
  attachmentsAccessSuite(t, context);
  attachmentsContentSuite(t, context);
  attachmentsDownloadSuite(t, context);
  attachmentsDeleteSuite(t, context);
}
