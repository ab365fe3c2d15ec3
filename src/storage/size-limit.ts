import { Transform, type TransformCallback } from 'node:stream';
import { ObjectTooLargeError } from './storage.js';

/**
 * Passes bytes through and errors with `ObjectTooLargeError` on the chunk that crosses
 * `maxBytes`, so nothing past the limit ever reaches the backend and the producer is
 * stopped early instead of being read to the end.
 */
export class SizeLimit extends Transform {
  bytes = 0;
  exceeded = false;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    // Writable side decodes strings to Buffers, so anything else is an object-mode source.
    if (!Buffer.isBuffer(chunk)) {
      callback(new TypeError('storage body must be a byte stream'));
      return;
    }
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      this.exceeded = true;
      callback(new ObjectTooLargeError(this.maxBytes));
      return;
    }
    callback(null, chunk);
  }
}
