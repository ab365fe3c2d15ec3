/**
 * Attachment uploads with progress and cancel. `fetch` reports no upload progress, so where
 * there is an `XMLHttpRequest` (browsers) the form goes through it and progress is its
 * `upload.onprogress`: bytes of the request body that went out. In Node 24 (no
 * `XMLHttpRequest`) the form is encoded here and streamed through `fetch`, and progress counts
 * the body bytes handed to the connection as it asks for them: the socket's buffers run a few
 * hundred KB ahead of what the service has received, and the last call (`loaded === total`)
 * comes when the whole body was handed over, before the answer.
 */

export interface UploadProgress {
  /** Request body bytes sent so far (the multipart form: the file and a few hundred bytes around it). */
  loaded: number;
  /** The whole request body's size in bytes. */
  total: number;
}

export interface UploadOptions {
  /** Called as the body goes out, with `loaded` growing up to `total`. */
  onProgress?: (progress: UploadProgress) => void;
  /** Aborting it cancels the upload: the call rejects with its reason (an `AbortError` DOMException by default) and nothing is kept. */
  signal?: AbortSignal;
}

type Transport = (url: URL, init: { method: string; headers: Record<string, string>; body?: string | FormData }) => Promise<Response>;

/** True for the rejection of an aborted request (fetch's, ours, or a signal's own reason). */
export function isAbortError(error: unknown): boolean {
  return (error as { name?: unknown } | null)?.name === 'AbortError';
}

const abortReason = (signal: AbortSignal): unknown => signal.reason ?? new DOMException('The upload was aborted', 'AbortError');

/** A transport for one upload: XMLHttpRequest where the platform has it, else `fetchImpl` with a counted stream. */
export function uploadTransport(fetchImpl: typeof fetch, options: UploadOptions): Transport {
  const XHR = (globalThis as { XMLHttpRequest?: typeof XMLHttpRequest }).XMLHttpRequest;
  return XHR ? (url, init) => sendWithXhr(XHR, url, init, options) : (url, init) => sendWithFetch(fetchImpl, url, init, options);
}

function sendWithXhr(XHR: typeof XMLHttpRequest, url: URL, init: Parameters<Transport>[1], options: UploadOptions): Promise<Response> {
  const { signal, onProgress } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const xhr = new XHR();
    xhr.open(init.method, url);
    for (const [name, value] of Object.entries(init.headers)) xhr.setRequestHeader(name, value);
    if (onProgress) xhr.upload.onprogress = (event) => event.lengthComputable && onProgress({ loaded: event.loaded, total: event.total });
    const onAbort = (): void => xhr.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (): void => signal?.removeEventListener('abort', onAbort);
    xhr.onload = () => {
      settle();
      const headers = new Headers();
      const retryAfter = xhr.getResponseHeader('retry-after');
      if (retryAfter !== null) headers.set('retry-after', retryAfter);
      headers.set('content-type', xhr.getResponseHeader('content-type') ?? 'application/json');
      resolve(new Response(xhr.status === 204 ? null : xhr.responseText, { status: xhr.status, statusText: xhr.statusText, headers }));
    };
    xhr.onerror = () => {
      settle();
      reject(new TypeError('upload failed: no answer'));
    };
    xhr.onabort = () => {
      settle();
      reject(signal ? abortReason(signal) : new DOMException('The upload was aborted', 'AbortError'));
    };
    xhr.send(init.body ?? null);
  });
}

/** `multipart/form-data` of one file, encoded as browsers do, streamed and counted. */
async function sendWithFetch(fetchImpl: typeof fetch, url: URL, init: Parameters<Transport>[1], options: UploadOptions): Promise<Response> {
  const { signal, onProgress } = options;
  if (signal?.aborted) throw abortReason(signal);
  const form = init.body;
  const entry = form instanceof FormData ? [...form.entries()][0] : undefined;
  if (!entry || typeof entry[1] === 'string') return fetchImpl(url, { ...init, signal });
  const [field, file] = entry;
  const boundary = `----chat-client-${globalThis.crypto.randomUUID()}`;
  const encoder = new TextEncoder();
  const head = encoder.encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(field)}"; filename="${escapeName(file.name)}"\r\n` +
      `Content-Type: ${file.type || 'application/octet-stream'}\r\n\r\n`,
  );
  const tail = encoder.encode(`\r\n--${boundary}--\r\n`);
  const total = head.byteLength + file.size + tail.byteLength;
  let loaded = 0;
  const reader = file.stream().getReader();
  let headSent = false;
  const body = new ReadableStream<Uint8Array>({
    // Pulled as the connection takes bytes: what was handed over is what is counted.
    async pull(controller) {
      let chunk: Uint8Array | undefined;
      if (!headSent) {
        headSent = true;
        chunk = head;
      } else {
        const next = await reader.read();
        chunk = next.done ? undefined : next.value;
        if (!chunk) {
          controller.enqueue(tail);
          loaded += tail.byteLength;
          onProgress?.({ loaded, total });
          controller.close();
          return;
        }
      }
      controller.enqueue(chunk);
      loaded += chunk.byteLength;
      onProgress?.({ loaded, total });
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  const headers = { ...init.headers, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(total) };
  // `duplex: 'half'` is what a streamed request body needs in fetch; DOM's RequestInit does not know it yet.
  const request: RequestInit & { duplex: 'half' } = { method: init.method, headers, body, signal, duplex: 'half' };
  return fetchImpl(url, request);
}

/** As the HTML standard encodes names in multipart/form-data: quotes and line breaks percent-encoded. */
const escapeName = (name: string): string => name.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
