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
