import { createLocalStorage, type LocalStorageOptions } from './storage-local.js';
import { createS3Storage, type S3StorageOptions } from './storage-s3.js';
import type { Storage, StorageKind } from './storage.js';

export interface StorageFactoryOptions {
  kind: StorageKind;
  /** Required when `kind` is 'local'. */
  local?: LocalStorageOptions;
  /** Required when `kind` is 's3'. */
  s3?: S3StorageOptions;
}

export function createStorage(options: StorageFactoryOptions): Storage {
  // The kind usually comes from env/config at runtime, so it is re-checked here rather than
  // trusted to the type.
  const kind: string = options.kind;
  switch (kind) {
    case 'local':
      if (!options.local) throw new Error('storage kind "local" needs local options');
      return createLocalStorage(options.local);
    case 's3':
      if (!options.s3) throw new Error('storage kind "s3" needs s3 options');
      return createS3Storage(options.s3);
    default:
      throw new Error(`unknown storage kind ${JSON.stringify(kind)}`);
  }
}
