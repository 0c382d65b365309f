// Shared byte helpers for the checkpoint readers: buffer normalisation, strict UTF-8, JSON that fails with E_FORMAT (RFC 8259).

import { LowbitError } from '../errors.js';

/** A Uint8Array over the whole input, without copying. */
export function asBytes(buf: Uint8Array | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (buf instanceof Uint8Array) return buf;
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  return new Uint8Array(buf);
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes UTF-8, throwing E_FORMAT (with the file and byte offset) on invalid sequences. */
export function decodeUtf8(bytes: Uint8Array, fileName: string, offset: number, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new LowbitError('E_FORMAT', `${fileName}: ${what} at byte ${offset} is not valid UTF-8`, {
      file: fileName,
      offset,
    });
  }
}

/**
 * Parses a JSON document (text or UTF-8 bytes) and throws E_FORMAT naming the file on any syntax error,
 * so callers never see a SyntaxError. A leading UTF-8 byte-order mark is skipped.
 */
export function parseJson(input: string | Uint8Array | ArrayBuffer, fileName: string): unknown {
  let text = typeof input === 'string' ? input : decodeUtf8(asBytes(input), fileName, 0, 'JSON text');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    throw new LowbitError('E_FORMAT', `${fileName}: not valid JSON (${detail})`, { file: fileName });
  }
}

/** True for a plain JSON object (not null, not an array). */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A short, non-recursive description of a parsed JSON value for error messages (JSON.stringify would recurse, and a
 * hostile header can nest arrays deeply enough to overflow the stack).
 */
export function describeJson(v: unknown): string {
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (Array.isArray(v)) {
    const head = v.slice(0, 4).map((x) => (x !== null && typeof x === 'object' ? (Array.isArray(x) ? '[...]' : '{...}') : describeJson(x)));
    return `[${head.join(', ')}${v.length > 4 ? ', ...' : ''}]`;
  }
  return typeof v === 'object' ? '{...}' : typeof v;
}
