// Node-only file reading for checkpoints: one preallocated buffer per file, filled with fs.readSync / FileHandle.read.
// Import from 'lowbit/io/node' style entry points only; the rest of src/io has no `node:` imports and bundles for browsers.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { LowbitError } from '../errors.js';

const CHUNK = 1 << 30; // readSync takes at most ~2 GiB per call; read in 1 GiB steps

function ioError(path: string | URL, e: unknown): LowbitError {
  if (e instanceof LowbitError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new LowbitError('E_IO', `cannot read ${String(path)}: ${msg}`, { file: String(path) });
}

function shrunk(path: string | URL, got: number, size: number): LowbitError {
  return new LowbitError('E_FORMAT', `${String(path)}: file shrank while reading (${got} of ${size} bytes)`, { file: String(path), offset: got });
}

/** Reads a whole file into one Uint8Array sized from fstat (no intermediate chunks, no second copy). */
export function readFileBytes(path: string | URL): Uint8Array {
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const out = new Uint8Array(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, out, got, Math.min(CHUNK, size - got), got);
      if (n === 0) throw shrunk(path, got, size);
      got += n;
    }
    return out;
  } catch (e) {
    throw ioError(path, e);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Async twin of `readFileBytes`, with an optional progress callback. */
export async function readFileBytesAsync(
  path: string | URL,
  onProgress?: (loaded: number, total: number) => void,
): Promise<Uint8Array> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(path, 'r');
    const size = (await fh.stat()).size;
    const out = new Uint8Array(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await fh.read(out, got, Math.min(CHUNK, size - got), got);
      if (bytesRead === 0) throw shrunk(path, got, size);
      got += bytesRead;
      onProgress?.(got, size);
    }
    return out;
  } catch (e) {
    throw ioError(path, e);
  } finally {
    await fh?.close();
  }
}
