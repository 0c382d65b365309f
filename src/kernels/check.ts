// Argument checks shared by every backend's kernels: they run before any kernel, so a WASM kernel
// never sees a length, id or leading dimension that would take it outside its arrays.

import { LowbitError } from '../errors.js';

// ---------------------------------------------------------------------------------------------

type AnyArray = { length: number };

/** Throws E_ARG unless every value is a non-negative safe integer. */
export function checkDims(kernel: string, dims: Record<string, number>): void {
  for (const k in dims) {
    const v = dims[k]!;
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new LowbitError('E_ARG', `${kernel}: ${k} must be a non-negative integer, got ${v}`);
    }
  }
}

/** Throws E_SHAPE unless `arr` holds at least `need` elements. */
export function checkLen(kernel: string, name: string, arr: AnyArray | null, need: number): void {
  if (arr !== null && arr.length < need) {
    if (isDetached(arr)) {
      throw new LowbitError('E_DETACHED', `${kernel}: ${name} is a view of a detached buffer (WASM memory grew since it was made; take a fresh view, e.g. tensor.data)`);
    }
    throw new LowbitError('E_SHAPE', `${kernel}: ${name} has ${arr.length} elements, needs at least ${need}`);
  }
}

function isDetached(arr: AnyArray): boolean {
  if (!ArrayBuffer.isView(arr)) return false;
  const buf = arr.buffer as ArrayBuffer & { detached?: boolean };
  if (buf.detached !== undefined) return buf.detached;
  if (buf.byteLength !== 0) return false;
  try {
    new Uint8Array(buf); // a view on a detached buffer cannot be constructed
    return false;
  } catch {
    return true;
  }
}

/** Elements a row-major [rows, cols] matrix with leading dimension ld spans (0 if empty). */
export function span(rows: number, cols: number, ld: number): number {
  return rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
}

export function checkGemm(kernel: string, transB: boolean, M: number, N: number, K: number,
  a: Float32Array, lda: number, b: Float32Array, ldb: number, c: Float32Array, ldc: number, bias: Float32Array | null): void {
  checkDims(kernel, { M, N, K, lda, ldb, ldc });
  if (lda < K || ldc < N || ldb < (transB ? K : N)) {
    throw new LowbitError('E_ARG', `${kernel}: leading dimensions lda=${lda} ldb=${ldb} ldc=${ldc} too small for M=${M} N=${N} K=${K}`);
  }
  checkLen(kernel, 'a', a, span(M, K, lda));
  checkLen(kernel, 'b', b, transB ? span(N, K, ldb) : span(K, N, ldb));
  checkLen(kernel, 'c', c, span(M, N, ldc));
  checkLen(kernel, 'bias', bias, N);
}

