import type { Storage } from '../storage/storage.js';
import type { Otel } from './sdk.js';

/** The S3 storage with a client span per call (a `get` span ends when the object's stream starts, not when it is read). */
export function tracedStorage(storage: Storage, otel: Otel): Storage {
  const { api } = otel;
  const call = <R>(method: string, key: string | undefined, run: () => Promise<R>): Promise<R> =>
    otel.inSpan(
      `S3.${method}`,
      { kind: api.SpanKind.CLIENT, attributes: { 'rpc.system': 'aws-api', 'rpc.service': 'S3', 'rpc.method': method, ...(key ? { 'aws.s3.key': key } : {}) } },
      run,
    );
  return {
    put: (key, body, options) => call('PutObject', key, () => storage.put(key, body, options)),
    get: (key, range) => call('GetObject', key, () => storage.get(key, range)),
    delete: (key) => call('DeleteObject', key, () => storage.delete(key)),
    presignedUrl: (key, options) => storage.presignedUrl(key, options),
    ping: () => call('HeadBucket', undefined, () => storage.ping()),
    close: () => storage.close(),
  };
}
