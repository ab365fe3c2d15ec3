import { createHmac, timingSafeEqual } from 'node:crypto';

/** Expiry is rounded up to this step so a page reloaded within it gets the same, cacheable URL. */
const EXPIRY_STEP_SECONDS = 300;

export interface AttachmentLinkSigner {
  /** Absolute, signed, expiring URL on the service's own domain. */
  url(attachment: { id: number; filename: string }, nowMs?: number): string;
  /** True when `sig` is this service's signature of (id, expires) and `expires` is in the future. */
  verify(id: number, expires: number, sig: string, nowMs?: number): boolean;
}

/** A download name safe in a URL path segment (the real name is in Content-Disposition). */
const pathName = (filename: string): string => encodeURIComponent(filename.replace(/[/\\]/g, '_')) || 'file';

export function createLinkSigner(options: { publicUrl: string; secret: string; ttlSeconds: number }): AttachmentLinkSigner {
  // A key of its own, derived from the service secret: a link signature is never a token signature.
  const key = createHmac('sha256', options.secret).update('attachment-links/v1').digest();
  const sign = (id: number, expires: number) => createHmac('sha256', key).update(`${id}.${expires}`).digest('base64url');
  return {
    url(attachment, nowMs = Date.now()) {
      const expires = Math.ceil((nowMs / 1000 + options.ttlSeconds) / EXPIRY_STEP_SECONDS) * EXPIRY_STEP_SECONDS;
      return `${options.publicUrl}/media/attachments/${attachment.id}/${pathName(attachment.filename)}?expires=${expires}&sig=${sign(attachment.id, expires)}`;
    },
    verify(id, expires, sig, nowMs = Date.now()) {
      if (!Number.isSafeInteger(expires) || expires * 1000 <= nowMs) return false;
      const expected = Buffer.from(sign(id, expires));
      const given = Buffer.from(sig);
      return expected.length === given.length && timingSafeEqual(expected, given);
    },
  };
}
