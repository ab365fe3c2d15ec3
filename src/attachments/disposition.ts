/**
 * Filenames are client-supplied metadata: they are cleaned once on upload, never used as a
 * storage key, and reach a browser only through `Content-Disposition`.
 */

/** Longest filename kept, in UTF-8 bytes (the usual filesystem limit). */
const MAX_FILENAME_BYTES = 255;
const FALLBACK_NAME = 'file';

/**
 * Control characters (C0, DEL, C1), bidi overrides and isolates (which make `evil.exe` look
 * like `exe.live`), zero-width characters, and line/paragraph separators.
 */
const UNSAFE_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/g;

/**
 * The last path segment of a client's filename with unsafe characters removed, NFC-normalised
 * and at most 255 UTF-8 bytes (the extension is kept when it is short). Never empty; never
 * `.`/`..`.
 */
export function sanitizeFilename(raw: string | undefined | null): string {
  if (!raw) return FALLBACK_NAME;
  // Either separator, whichever platform the client runs on; also drops `C:` drive prefixes.
  const segments = raw.normalize('NFC').replace(UNSAFE_CHARACTERS, '').split(/[/\\]/);
  // Trailing dots and spaces are dropped as Windows would drop them on save.
  const name = (segments.at(-1) ?? '').replace(/^[A-Za-z]:/, '').trim().replace(/[\s.]+$/, '');
  if (name === '') return FALLBACK_NAME;
  return truncateUtf8(name, MAX_FILENAME_BYTES);
}

/** Cuts to `maxBytes` on a character boundary, keeping an extension of up to 16 characters. */
function truncateUtf8(name: string, maxBytes: number): string {
  if (Buffer.byteLength(name) <= maxBytes) return name;
  const dot = name.lastIndexOf('.');
  const extension = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : '';
  const stem = extension ? name.slice(0, dot) : name;
  let budget = maxBytes - Buffer.byteLength(extension);
  let kept = '';
  for (const character of stem) {
    budget -= Buffer.byteLength(character);
    if (budget < 0) break;
    kept += character;
  }
  return kept + extension;
}

/**
 * Types a browser may show inline: they cannot run script in our origin. Everything else
 * (HTML, SVG, XML, JavaScript, unknown bytes, ...) is served as a download.
 */
const INLINE_TYPES = new Set([
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/avif',
  'video/mp4',
  'video/webm',
  'application/pdf',
  'text/plain',
]);

export function isInlineSafe(contentType: string): boolean {
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  return INLINE_TYPES.has(type) || (type.startsWith('audio/') && /^audio\/[a-z0-9.+-]+$/.test(type));
}

/** `filename=` for old clients: printable ASCII only, no quote, backslash or percent sign. */
const asciiFallback = (name: string): string => {
  const ascii = name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').replace(/[^\x20-\x7e]|["\\%]/g, '_');
  return ascii.trim() === '' ? FALLBACK_NAME : ascii;
};

/** RFC 5987 `attr-char`: encodeURIComponent leaves `'()*` alone, which are not attr-chars. */
const rfc5987 = (value: string): string =>
  encodeURIComponent(value).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** RFC 6266 header with an ASCII `filename=` and the exact name in `filename*=UTF-8''...`. */
export function contentDisposition(kind: 'inline' | 'attachment', filename: string): string {
  const name = sanitizeFilename(filename);
  return `${kind}; filename="${asciiFallback(name)}"; filename*=UTF-8''${rfc5987(name)}`;
}
