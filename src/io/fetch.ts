// Downloading checkpoint files with `fetch` (WHATWG Fetch): streams the body into one preallocated buffer when
// Content-Length is known, so a multi-GB file is held once, not once per chunk plus once concatenated.

import { LowbitError } from '../errors.js';

export interface FetchBytesOptions {
  /** Defaults to the global `fetch`. */
  fetch?: (input: string | URL, init?: RequestInit) => Promise<Response>;
  /** Called after each received chunk; `total` is undefined when the size is unknown. */
  onProgress?: (loaded: number, total: number | undefined) => void;
  signal?: AbortSignal;
}

/** Fetches `url` and returns its body as bytes. HTTP and network failures are E_IO naming the URL. */
export async function fetchBytes(url: URL | string, opts: FetchBytesOptions = {}): Promise<Uint8Array> {
  const f = opts.fetch ?? globalThis.fetch;
  let res: Response;
  try {
    res = await f(url, opts.signal !== undefined ? { signal: opts.signal } : undefined);
  } catch (e) {
    throw new LowbitError('E_IO', `fetch ${String(url)} failed: ${e instanceof Error ? e.message : String(e)}`, { url: String(url) });
  }
  return bytesFromResponse(res, { url: String(url), onProgress: opts.onProgress });
}

/** The body of a `Response` as one Uint8Array (preallocated from Content-Length when the body is not encoded). */
export async function bytesFromResponse(
  res: Response,
  opts: { url?: string; onProgress?: (loaded: number, total: number | undefined) => void } = {},
): Promise<Uint8Array> {
  const url = opts.url ?? (res.url || 'response');
  if (!res.ok) throw new LowbitError('E_IO', `fetch ${url}: HTTP ${res.status} ${res.statusText}`, { url, status: res.status });
  const lengthHeader = res.headers.get('content-length');
  const encoding = res.headers.get('content-encoding');
  const declared = lengthHeader !== null && /^\d+$/.test(lengthHeader.trim()) ? Number(lengthHeader) : undefined;
  // With a content encoding, Content-Length counts the compressed bytes, not the bytes the stream yields.
  const total = declared !== undefined && Number.isSafeInteger(declared) && (encoding === null || encoding === 'identity') ? declared : undefined;

  if (res.body === null) {
    const b = new Uint8Array(await res.arrayBuffer());
    opts.onProgress?.(b.byteLength, b.byteLength);
    return b;
  }
  const reader = res.body.getReader();
  let out: Uint8Array | null = total !== undefined ? new Uint8Array(total) : null;
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (out !== null && loaded + value.byteLength > out.byteLength) {
        // The server sent more than it declared: keep what we have and continue without preallocation.
        chunks.push(out.subarray(0, loaded));
        out = null;
      }
      if (out !== null) out.set(value, loaded);
      else chunks.push(value);
      loaded += value.byteLength;
      opts.onProgress?.(loaded, total);
    }
  } catch (e) {
    throw new LowbitError('E_IO', `fetch ${url}: download failed after ${loaded} bytes: ${e instanceof Error ? e.message : String(e)}`, { url, offset: loaded });
  } finally {
    reader.releaseLock();
  }
  if (out !== null) {
    if (loaded !== out.byteLength) {
      throw new LowbitError('E_FORMAT', `fetch ${url}: truncated download, ${loaded} of ${out.byteLength} bytes`, { url, offset: loaded });
    }
    return out;
  }
  if (chunks.length === 1) return chunks[0]!;
  const joined = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    joined.set(c, at);
    at += c.byteLength;
  }
  return joined;
}
