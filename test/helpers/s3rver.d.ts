// s3rver ships no types; this declares only what test/helpers/s3-server.ts uses.
declare module 's3rver' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  interface S3rverOptions {
    silent?: boolean;
    /** Where buckets, objects and pending multipart uploads are kept on disk. */
    directory?: string;
    /** Off in tests: 127.0.0.1 is an IP anyway, but no Host should be read as a bucket. */
    vhostBuckets?: boolean;
    allowMismatchedSignatures?: boolean;
  }

  class S3rver {
    constructor(options?: S3rverOptions);
    /** Koa request handler, for mounting on our own http.Server. */
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }

  export = S3rver;
}
