import { Compile } from 'typebox/compile';
import { CLIENT_FRAMES, type ClientFrame } from '../contract/frames.js';
import type { ErrorCode } from '../contract/socket-codes.js';
import { classifyError, DomainError, type DomainErrorKind } from '../domain/errors.js';

export type { ClientFrame } from '../contract/frames.js';

const validators = Object.fromEntries(Object.entries(CLIENT_FRAMES).map(([type, schema]) => [type, Compile(schema)])) as {
  [K in keyof typeof CLIENT_FRAMES]: ReturnType<typeof Compile<(typeof CLIENT_FRAMES)[K]>>;
};
const FRAME_TYPES = Object.keys(CLIENT_FRAMES);
const EXPECTED = `${FRAME_TYPES.slice(0, -1).join(', ')} or ${FRAME_TYPES.at(-1)}`;

/** A frame refused before it reached the domain: its code is the `error` event's. */
export class FrameError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Parses and validates one frame; throws `FrameError` with a message naming the field. */
export function parseFrame(text: string): ClientFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FrameError('bad_json', 'frame is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FrameError('invalid_frame', 'frame must be a JSON object with a "type"');
  }
  const type = (value as { type?: unknown }).type;
  const validator = typeof type === 'string' && Object.hasOwn(validators, type) ? validators[type as keyof typeof validators] : undefined;
  if (!validator) throw new FrameError('unknown_type', `unknown frame type ${JSON.stringify(type)}; expected ${EXPECTED}`);
  if (!validator.Check(value)) {
    const [first] = validator.Errors(value);
    const field = first?.instancePath.slice(1) || (first?.params as { requiredProperties?: string[] } | undefined)?.requiredProperties?.[0] || 'frame';
    throw new FrameError('invalid_frame', `${field}: ${first?.message ?? 'invalid'}`);
  }
  return value as ClientFrame;
}

/** The `error` event code of each domain error kind. */
const CODES: Record<DomainErrorKind | 'bad_data' | 'internal', ErrorCode> = {
  invalid: 'invalid_frame',
  bad_data: 'invalid_frame',
  unauthenticated: 'forbidden',
  forbidden: 'forbidden',
  not_found: 'not_found',
  conflict: 'conflict',
  rate_limited: 'rate_limited',
  unavailable: 'unavailable',
  internal: 'internal',
};

/** The `error` event answering a frame that failed with `error`; `internal` says nothing more. */
export function frameErrorEvent(error: unknown, extra: Record<string, unknown> = {}): { event: string; internal: boolean } {
  if (error instanceof FrameError) return { event: errorEvent(error.code, error.message, extra), internal: false };
  const kind = classifyError(error);
  if (kind === 'internal') return { event: errorEvent('internal', 'internal error', extra), internal: true };
  if (kind === 'unavailable') return { event: errorEvent('unavailable', 'a dependency is unavailable; try again shortly', extra), internal: false };
  if (kind === 'bad_data') return { event: errorEvent('invalid_frame', 'the frame contains characters or numbers that cannot be stored', extra), internal: false };
  const domain = error as DomainError;
  const retry = domain.retryAfterSeconds === undefined ? {} : { retry_after: domain.retryAfterSeconds };
  return { event: errorEvent(CODES[kind], domain.message, { ...extra, ...retry }), internal: false };
}

/** Server → client error event. */
export const errorEvent = (code: ErrorCode, message: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ type: 'error', code, message, ...extra });
