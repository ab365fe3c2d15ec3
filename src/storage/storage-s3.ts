import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Readable, pipeline } from 'node:stream';
import { SizeLimit } from './size-limit.js';
import {
  ObjectNotFoundError,
  ObjectTooLargeError,
  type ByteRange,
  type PresignOptions,
  type PutOptions,
  type Storage,
  type StoredObject,
} from './storage.js';

export interface S3StorageOptions {
  bucket: string;
  /** For S3-compatible services (MinIO, R2, ...); omit for AWS. */
  endpoint?: string;
  region: string;
  /** Both or neither; neither means the SDK's default chain (env, IAM role, ...). */
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
}

/**
 * lib-storage buffers whole parts: memory per upload is bounded by about
 * partSize * (queueSize + 1), i.e. ~15 MiB here, whatever the object's size.
 */
const PART_SIZE = 5 * 1024 * 1024;
const QUEUE_SIZE = 2;
const PING_TIMEOUT_MS = 5_000;

export function createS3Storage(options: S3StorageOptions): Storage {
  const { bucket } = options;
  const client = new S3Client(clientConfig(options));

  return {
    async put(key: string, body: Readable, { contentType, maxBytes }: PutOptions) {
      const limit = new SizeLimit(maxBytes);
      // pipeline, not pipe: an erroring body must also fail `limit`, which is what the
      // uploader reads from; the callback is required but errors surface through `limit`.
      const limited = pipeline(body, limit, () => {});
      // No ACL parameter anywhere: objects inherit the bucket's (private) policy.
      const upload = new Upload({
        client,
        params: { Bucket: bucket, Key: key, Body: limited, ContentType: contentType },
        partSize: PART_SIZE,
        queueSize: QUEUE_SIZE,
        leavePartsOnError: false,
      });
      try {
        await upload.done();
        return { size: limit.bytes };
      } catch (err) {
        body.destroy();
        limited.destroy();
        await upload.abort();
        await removeLeftovers(key, upload.uploadId);
        throw limit.exceeded ? new ObjectTooLargeError(maxBytes) : err;
      }
    },

    async get(key: string, range?: ByteRange): Promise<StoredObject> {
      const out = await client
        .send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: key,
            Range: range ? `bytes=${range.start}-${range.end}` : undefined,
          }),
        )
        .catch((err: unknown) => {
          throw notFoundOr(err, key);
        });
      const body = out.Body;
      // In Node the SDK hands back the http response stream; anything else is a runtime mix-up.
      if (!(body instanceof Readable)) throw new Error('S3 GetObject returned no Node stream');
      const size = range ? totalFromContentRange(out.ContentRange) : out.ContentLength;
      if (size === undefined) {
        body.destroy();
        throw new Error(`S3 GetObject for ${key} did not report the object size`);
      }
      return { body, size, contentType: out.ContentType ?? 'application/octet-stream' };
    },

    async delete(key: string) {
      // S3 answers 204 for a missing key, which is exactly the idempotence we promise.
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },

    async presignedUrl(key: string, { expiresInSeconds, contentDisposition, contentType }: PresignOptions) {
      const command = new GetObjectCommand({
        Bucket: bucket,
        Key: key,
        // Signed into the URL, so the client cannot swap them for e.g. text/html inline.
        ResponseContentDisposition: contentDisposition,
        ResponseContentType: contentType,
      });
      return getSignedUrl(client, command, { expiresIn: expiresInSeconds });
    },

    async ping() {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }), {
          abortSignal: AbortSignal.timeout(PING_TIMEOUT_MS),
        });
        return true;
      } catch {
        return false;
      }
    },

    async close() {
      client.destroy();
    },
  };

  /**
   * lib-storage already aborts its multipart upload before `done()` rejects, but that abort
   * can itself fail, and a completed PutObject/CompleteMultipartUpload can still end in an
   * error. Keys are unique per upload, so deleting here never removes anyone else's object.
   */
  async function removeLeftovers(key: string, uploadId: string | undefined): Promise<void> {
    const attempts: Promise<unknown>[] = [
      client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })),
    ];
    if (uploadId !== undefined) {
      attempts.push(
        client
          .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
          .catch((err: unknown) => {
            if (errorName(err) !== 'NoSuchUpload') throw err;
          }),
      );
    }
    // Best effort: the caller's original error matters more than a failed cleanup, and a
    // bucket lifecycle rule (AbortIncompleteMultipartUpload) is the backstop.
    await Promise.allSettled(attempts);
  }
}

/**
 * The origin presigned URLs of this bucket point at (scheme, host, port), as the SDK builds
 * them: virtual-hosted (`bucket.host`) unless path-style is forced or the bucket name cannot
 * be a host label over TLS, on `S3_ENDPOINT` or AWS's regional endpoint. The content security
 * policy must allow it when attachments redirect there (S3_SERVE_MODE=redirect).
 */
export function s3UrlOrigin(options: Pick<S3StorageOptions, 'bucket' | 'endpoint' | 'region' | 'forcePathStyle'>): string {
  const base = new URL(options.endpoint ?? `https://s3.${options.region}.amazonaws.com`);
  const dnsLabel = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(options.bucket) || (base.protocol === 'http:' && /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket));
  if (options.forcePathStyle || !dnsLabel) return base.origin;
  return `${base.protocol}//${options.bucket}.${base.host}`;
}

function clientConfig(options: S3StorageOptions): S3ClientConfig {
  const { accessKeyId, secretAccessKey } = options;
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new Error('S3 storage needs both accessKeyId and secretAccessKey, or neither');
  }
  return {
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
    ...(accessKeyId !== undefined &&
      secretAccessKey !== undefined && { credentials: { accessKeyId, secretAccessKey } }),
  };
}

/** `bytes 0-9/1234` -> 1234; `*` (unknown total) is treated as missing. */
function totalFromContentRange(header: string | undefined): number | undefined {
  const match = header === undefined ? null : /^bytes \d+-\d+\/(\d+)$/.exec(header);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

function errorName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

function notFoundOr(err: unknown, key: string): unknown {
  // HeadObject has no body, so its 404 surfaces as a bare 'NotFound' (a missing bucket looks
  // the same there). GetObject's NoSuchBucket stays an error: that is misconfiguration.
  const name = errorName(err);
  return name === 'NoSuchKey' || name === 'NotFound' ? new ObjectNotFoundError(key) : err;
}
