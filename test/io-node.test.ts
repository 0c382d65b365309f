// Tests for loading bytes without double copies: Node file reading (src/io/node.ts) and fetch streaming (src/io/fetch.ts).

import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LowbitError } from '../src/errors.js';
import { bytesFromResponse, fetchBytes, readSafetensors } from '../src/io/index.js';
import { readFileBytes, readFileBytesAsync } from '../src/io/node.js';
import { lowbitErrorAsync, FIXTURE } from './helpers.js';

const ST = new URL('model.safetensors', FIXTURE);



/** A Response whose body arrives in `chunks`, with an optional Content-Length header. */
function chunkedResponse(chunks: Uint8Array[], headers: Record<string, string> = {}, status = 200): Response {
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (const x of chunks) c.enqueue(x);
      c.close();
    },
  });
  return new Response(body, { status, headers });
}

function split(b: Uint8Array, n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < b.length; i += n) out.push(b.slice(i, i + n));
  return out;
}

describe('readFileBytes (Node)', () => {
  const want = new Uint8Array(readFileSync(ST));

  it('reads a whole file into one exactly sized buffer, sync and async', async () => {
    const a = readFileBytes(ST);
    expect(a.byteLength).toBe(want.byteLength);
    expect(a.buffer.byteLength).toBe(want.byteLength); // one allocation, no slack, no pool
    expect(Buffer.compare(Buffer.from(a), Buffer.from(want))).toBe(0);
    const seen: number[] = [];
    const b = await readFileBytesAsync(ST.pathname, (got) => seen.push(got));
    expect(Buffer.compare(Buffer.from(b), Buffer.from(want))).toBe(0);
    expect(seen[seen.length - 1]).toBe(want.byteLength);
    const { tensors } = readSafetensors(a);
    expect(tensors.get('model.decoder.embed_tokens.weight')!.bytes.buffer).toBe(a.buffer);
  });

  it('reports a missing file as a LowbitError naming it', async () => {
    let err: unknown;
    try {
      readFileBytes('/nonexistent/lowbit/model.safetensors');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LowbitError);
    expect((err as LowbitError).code).toBe('E_IO');
    expect((err as Error).message).toContain('/nonexistent/lowbit/model.safetensors');
    await lowbitErrorAsync(readFileBytesAsync('/nonexistent/lowbit/model.safetensors'));
  });

  it('keeps node: imports out of every src/io module but node.ts, so the rest bundles for browsers', () => {
    const dir = new URL('../src/io/', import.meta.url);
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts') && n !== 'node.ts')) {
      const src = readFileSync(new URL(f, dir), 'utf8');
      expect(src, f).not.toMatch(/from ['"]node:|require\(|from ['"](fs|path|os)['"]/);
    }
  });
});

describe('fetchBytes / bytesFromResponse', () => {
  const want = new Uint8Array(readFileSync(ST));

  it('streams into one preallocated buffer when Content-Length is known', async () => {
    const progress: [number, number | undefined][] = [];
    const got = await fetchBytes('https://example.test/model.safetensors', {
      fetch: async () => chunkedResponse(split(want, 10_000), { 'content-length': String(want.length) }),
      onProgress: (l, t) => progress.push([l, t]),
    });
    expect(got.buffer.byteLength).toBe(want.length);
    expect(Buffer.compare(Buffer.from(got), Buffer.from(want))).toBe(0);
    expect(progress[progress.length - 1]).toEqual([want.length, want.length]);
    expect(readSafetensors(got).tensors.size).toBe(36);
  });

  it('joins chunks once when the length is unknown or the body is content-encoded', async () => {
    const a = await bytesFromResponse(chunkedResponse(split(want, 4096)));
    expect(Buffer.compare(Buffer.from(a), Buffer.from(want))).toBe(0);
    const b = await bytesFromResponse(chunkedResponse(split(want, 4096), { 'content-length': '100', 'content-encoding': 'gzip' }));
    expect(Buffer.compare(Buffer.from(b), Buffer.from(want))).toBe(0);
    const c = await bytesFromResponse(chunkedResponse(split(want, 4096), { 'content-length': '100' })); // server under-declared
    expect(Buffer.compare(Buffer.from(c), Buffer.from(want))).toBe(0);
  });

  it('fails cleanly on truncated bodies, HTTP errors and network errors', async () => {
    const t = await lowbitErrorAsync(bytesFromResponse(chunkedResponse([want.subarray(0, 50)], { 'content-length': '100' }), { url: 'u' }));
    expect(t.code).toBe('E_FORMAT');
    expect(t.message).toContain('50 of 100');
    const h = await lowbitErrorAsync(fetchBytes('https://example.test/missing', { fetch: async () => new Response('nope', { status: 404 }) }));
    expect(h.code).toBe('E_IO');
    expect(h.message).toContain('404');
    expect(h.message).toContain('https://example.test/missing');
    const n = await lowbitErrorAsync(
      fetchBytes(new URL('https://example.test/x'), {
        fetch: async () => {
          throw new TypeError('network down');
        },
      }),
    );
    expect(n.code).toBe('E_IO');
    expect(n.message).toContain('network down');
  });
});
