// QLinear: a quantized [out, in] weight in the kernel-ready layout of assembly/qmatmul.ts, and the
// entries that run it: `qlinear` (W4A16 / W3A16 / W2A16 / W8A16 weight-only, f32 in, f32 out),
// `qlinearInt` (W8A8, W4A8, W4A4, W3A3, ...: activation codes from the cluster-wise quantizer) and
// `qlinearIntF32` (the same on f32 input, quantized with static per-cluster parameters inside the prep).
//
// Layout (built by `packQLinear` from a QuantizedTensor):
// - every segment (group or cluster) is padded with code 0 to whole blocks of the format (u4 32
//   codes, u2 64, u3 128, u8 16), so the kernels never split a block between segments; rows are
//   padded to a multiple of 4 (the kernels' row quads). Group sizes that are multiples of the block
//   cost nothing; RPTQ clusters pay ≤ one block each. The four rows of a quad are interleaved block
//   by block (formats.ts quadInterleave), so a quad is read as one forward stream.
// - wp: per row quad and segment, 12 f32: scales, zero points and Q = Σ codes of the segment
//   (precomputed here, exact).
// - gatherX / gatherQ: for every padded position, the input column it reads (−1 for padding):
//   gatherX applies the cluster permutation (f32 activations arrive in the model's channel order),
//   gatherQ does not (activation codes are already in cluster order, like the weight's).
//
// Weight-only precision: per segment, x is split exactly into u = round(x/s) + 2^20 with
// s = max|x|/(2^20 − 1), i.e. x ≈ s·(u − 2^20) with |error| ≤ s/2 ≈ 4.8e-7·max|x| per element
// (21 bits); Σ q·u is exact in integers. The result differs from dequantize-then-f32 by at most
// Σ_g |s_w|·Σ|q − z|·s_g/2 plus f32 rounding of the per-segment rescale; tests check ≤ 1e-5
// relative to max|y|.

import { LowbitError } from '../errors.js';
import type { Kernels } from '../kernels/index.js';
import { ACT_CHUNK_BYTES, MAX_SEGMENT_CODES, type QmmMode } from '../kernels/qmatmul.js';
import { currentBackend } from '../runtime.js';
import type { Heap } from '../wasm/heap.js';
import { FORMATS, packedBytes, packedRowBytes, quadInterleave, type PackedFormat } from './formats.js';
import { defaultKernels } from './quantize.js';
import type { QuantizedTensor } from './types.js';

export interface QLinearOptions {
  /** Kernels to run on (default: the backend `init()` chose, else the js reference). */
  kernels?: Kernels;
  /** Keep the packed arrays resident in this WASM heap (no copies per call). Default: the current backend's heap. */
  heap?: Heap | null;
}

/** Options of one `qlinear` / `qlinearInt` call. */
export interface QLinearCallOptions extends QLinearOptions {
  /**
   * Write y here (≥ M·out values; the first M·out are written) instead of a new array; returned as
   * `out.subarray(0, M·out)`. A view of the heap is written in place (no copy back).
   */
  out?: Float32Array;
  /** Reusable activation scratch (same heap) instead of alloc/free per call. */
  scratch?: QLinearScratch;
}

/**
 * Reusable activation scratch of the qlinear kernels in one WASM heap: grows to the largest call
 * and is kept until `dispose()` (e.g. one per run state). Not for concurrent use.
 */
export class QLinearScratch {
  private ptr = -1;
  private bytes = 0;
  constructor(readonly heap: Heap) {}
  /** Pointer to ≥ `bytes` bytes (64-byte aligned); may grow memory (detaching old views). */
  take(bytes: number): number {
    if (bytes > this.bytes || this.ptr < 0) {
      if (this.ptr >= 0) this.heap.free(this.ptr);
      this.ptr = -1;
      const n = Math.max(bytes, Math.ceil(this.bytes * 1.25), 64);
      this.ptr = this.heap.alloc(n, 'qlinear scratch');
      this.bytes = n;
    }
    return this.ptr;
  }
  dispose(): void {
    if (this.ptr >= 0) this.heap.free(this.ptr);
    this.ptr = -1; this.bytes = 0;
  }
}

/** A quantized [out, in] weight ready for the qmatmul kernels. */
export class QLinear {
  readonly out: number;
  readonly in: number;
  readonly format: PackedFormat;
  /** Weight code bits (2..8). */
  readonly bits: number;
  readonly nSeg: number;
  /** nSeg + 1 segment offsets in 16-code chunks (padded positions). */
  readonly segc: Int32Array;
  readonly gatherX: Int32Array;
  readonly gatherQ: Int32Array;
  /** Bytes per packed row. */
  readonly rb: number;
  /** The original segment offsets and cluster permutation (to validate activation codes). */
  readonly offsets: Int32Array;
  readonly perm: Int32Array | null;
  private readonly heap: Heap | null;
  private readonly store: { w: Uint8Array | number; wp: Float32Array | number; wLen: number; wpLen: number };
  /** Heap copies of segc, gatherX, gatherQ (pointers; −1 when not resident): kernels read them in place. */
  private readonly idx: { segc: number; gatherX: number; gatherQ: number };

  constructor(fields: {
    out: number; in: number; format: PackedFormat; bits: number; segc: Int32Array; gatherX: Int32Array; gatherQ: Int32Array;
    rb: number; offsets: Int32Array; perm: Int32Array | null; w: Uint8Array; wp: Float32Array; heap: Heap | null;
  }) {
    this.out = fields.out; this.in = fields.in; this.format = fields.format; this.bits = fields.bits;
    this.nSeg = fields.segc.length - 1; this.segc = fields.segc; this.gatherX = fields.gatherX; this.gatherQ = fields.gatherQ;
    this.rb = fields.rb; this.offsets = fields.offsets; this.perm = fields.perm; this.heap = fields.heap;
    const h = fields.heap;
    if (h) {
      const pw = h.alloc(fields.w.byteLength, 'qlinear codes');
      h.u8(pw, fields.w.length).set(fields.w);
      const pp = h.alloc(fields.wp.byteLength, 'qlinear params');
      h.f32(pp, fields.wp.length).set(fields.wp);
      this.store = { w: pw, wp: pp, wLen: fields.w.length, wpLen: fields.wp.length };
      const put = (a: Int32Array): number => { const p = h.alloc(Math.max(4, a.byteLength), 'qlinear index'); h.i32(p, a.length).set(a); return p; };
      this.idx = { segc: put(this.segc), gatherX: put(this.gatherX), gatherQ: put(this.gatherQ) };
    } else {
      this.store = { w: fields.w, wp: fields.wp, wLen: fields.w.length, wpLen: fields.wp.length };
      this.idx = { segc: -1, gatherX: -1, gatherQ: -1 };
    }
  }

  /** segc / gatherX / gatherQ for a kernel call: fresh heap views when resident (same values as the fields). */
  kernelIndex(): { segc: Int32Array; gatherX: Int32Array; gatherQ: Int32Array } {
    const h = this.heap, i = this.idx;
    if (!h || i.segc < 0) return { segc: this.segc, gatherX: this.gatherX, gatherQ: this.gatherQ };
    return { segc: h.i32(i.segc, this.segc.length), gatherX: h.i32(i.gatherX, this.gatherX.length), gatherQ: h.i32(i.gatherQ, this.gatherQ.length) };
  }

  /** Packed codes, ceil4(out) rows of rb bytes, quad-interleaved (formats.ts quadInterleave; a fresh view when resident: memory growth detaches old ones). */
  get w(): Uint8Array {
    const s = this.store.w;
    return typeof s === 'number' ? this.heap!.u8(s, this.store.wLen) : s;
  }

  /** Per (row quad, segment) parameters, 12 f32 each. */
  get wp(): Float32Array {
    const s = this.store.wp;
    return typeof s === 'number' ? this.heap!.f32(s, this.store.wpLen) : s;
  }

  /** Bytes of packed codes (the weight traffic of one GEMV). */
  get codeBytes(): number { return this.store.wLen; }

  /** Returns resident memory to the heap (the object must not be used afterwards). */
  dispose(): void {
    if (this.heap && typeof this.store.w === 'number') {
      this.heap.free(this.store.w);
      this.heap.free(this.store.wp as number);
      this.store.w = new Uint8Array(0);
      this.store.wp = new Float32Array(0);
    }
    if (this.heap && this.idx.segc >= 0) {
      this.heap.free(this.idx.segc); this.heap.free(this.idx.gatherX); this.heap.free(this.idx.gatherQ);
      this.idx.segc = this.idx.gatherX = this.idx.gatherQ = -1;
    }
  }
}

function currentHeap(): Heap | null {
  try {
    return currentBackend().heap;
  } catch {
    return null;
  }
}

/**
 * Packs a QuantizedTensor of an [out, in] weight (per-group, per-row-cluster, per-channel or
 * per-tensor; any bits 2..8) into the kernel-ready layout. Throws LowbitError (E_SHAPE, E_ARG)
 * when the packed bytes, scale or zero counts do not match the shape and granularity.
 */
export function packQLinear(qt: QuantizedTensor, opts: QLinearOptions = {}): QLinear {
  const k = opts.kernels ?? defaultKernels();
  const t = (FORMATS as Record<string, (typeof FORMATS)[PackedFormat] | undefined>)[qt.format];
  if (!t) throw new LowbitError('E_ARG', `packQLinear: unknown format '${qt.format}'`);
  if (qt.shape.length !== 2) throw new LowbitError('E_SHAPE', `packQLinear: weight must be 2-D [out, in], got shape [${qt.shape.join(', ')}]`);
  const [out, inn] = qt.shape as [number, number];
  if (qt.rows !== out || qt.cols !== inn) throw new LowbitError('E_SHAPE', `packQLinear: layout ${qt.rows}×${qt.cols} does not match shape [${out}, ${inn}]`);
  const bits = qt.scheme.bits;
  if (bits > t.bits) throw new LowbitError('E_ARG', `packQLinear: ${bits}-bit codes do not fit format ${qt.format}`);
  if (qt.qs.length !== packedBytes(qt.format, out, inn)) {
    throw new LowbitError('E_SHAPE', `packQLinear: ${qt.qs.length} packed bytes, ${qt.format} [${out}, ${inn}] needs ${packedBytes(qt.format, out, inn)}`);
  }
  const off = qt.offsets, nSeg = off.length - 1;
  if (nSeg < 1 || off[0] !== 0 || off[nSeg] !== inn) throw new LowbitError('E_ARG', `packQLinear: offsets must run from 0 to ${inn}`);
  for (let g = 0; g < nSeg; g++) if (!(off[g + 1]! > off[g]!)) throw new LowbitError('E_ARG', `packQLinear: offsets must strictly increase at ${g}`);
  const rowPeriod = qt.rowPeriod;
  if (!(rowPeriod === 1 || rowPeriod === out)) throw new LowbitError('E_ARG', `packQLinear: rowPeriod must be 1 or ${out}, got ${rowPeriod}`);
  const slots = Math.min(rowPeriod, out) * nSeg;
  if (qt.scale.length !== slots || qt.zero.length !== slots) {
    throw new LowbitError('E_SHAPE', `packQLinear: ${nSeg} segments × ${Math.min(rowPeriod, out)} rows need ${slots} scales and zeros, got ${qt.scale.length} and ${qt.zero.length}`);
  }
  if (qt.perm && qt.perm.length !== inn) throw new LowbitError('E_SHAPE', `packQLinear: perm has ${qt.perm.length} entries, expected ${inn}`);
  const qmax = 2 ** bits - 1;
  for (let i = 0; i < slots; i++) {
    if (!(qt.scale[i]! > 0) || !Number.isFinite(qt.scale[i]!)) throw new LowbitError('E_ARG', `packQLinear: scale[${i}] must be finite and > 0, got ${qt.scale[i]}`);
    if (qt.zero[i]! > qmax) throw new LowbitError('E_RANGE', `packQLinear: zero[${i}] = ${qt.zero[i]} is above ${qmax}`);
  }
  // padded segments
  const B = t.blockCodes;
  const poff = new Int32Array(nSeg + 1);
  for (let g = 0; g < nSeg; g++) {
    const n = off[g + 1]! - off[g]!;
    const p = Math.ceil(n / B) * B;
    if (p > MAX_SEGMENT_CODES) throw new LowbitError('E_ARG', `packQLinear: segment ${g} has ${n} columns, at most ${MAX_SEGMENT_CODES} are supported`);
    poff[g + 1] = poff[g]! + p;
  }
  const Kp = poff[nSeg]!;
  const segc = poff.map((v) => v / 16);
  const gatherX = new Int32Array(Kp).fill(-1), gatherQ = new Int32Array(Kp).fill(-1);
  for (let g = 0; g < nSeg; g++) {
    for (let i = 0; i < off[g + 1]! - off[g]!; i++) {
      gatherQ[poff[g]! + i] = off[g]! + i;
      gatherX[poff[g]! + i] = qt.perm ? qt.perm[off[g]! + i]! : off[g]! + i;
    }
  }
  // codes: unpack, re-lay out padded, pack
  const codes = new Uint8Array(out * inn);
  k.unpackCodes(out, inn, qt.format, qt.qs, codes);
  const rowsPad = Math.ceil(out / 4) * 4;
  const padded = new Uint8Array(rowsPad * Kp);
  const wp = new Float32Array((rowsPad / 4) * nSeg * 12);
  for (let r = 0; r < out; r++) {
    const pr = (r % rowPeriod) * nSeg, quad = r >> 2, lane = r & 3;
    for (let g = 0; g < nSeg; g++) {
      let Q = 0;
      for (let i = off[g]!; i < off[g + 1]!; i++) {
        const q = codes[r * inn + i]!;
        padded[r * Kp + poff[g]! + i - off[g]!] = q;
        Q += q;
      }
      const o = (quad * nSeg + g) * 12;
      wp[o + lane] = qt.scale[pr + g]!;
      wp[o + 4 + lane] = qt.zero[pr + g]!;
      wp[o + 8 + lane] = Q;
    }
  }
  const rb = packedRowBytes(qt.format, Kp);
  const rowMajor = new Uint8Array(rowsPad * rb);
  k.packCodes(rowsPad, Kp, qt.format, padded, rowMajor);
  const w = quadInterleave(qt.format, rowsPad, Kp, rowMajor);
  const heap = opts.heap === undefined ? currentHeap() : opts.heap;
  return new QLinear({ out, in: inn, format: qt.format, bits, segc, gatherX, gatherQ, rb, offsets: off.slice(), perm: qt.perm ? qt.perm.slice() : null, w, wp, heap });
}

/** Runs `body` with act/ap scratch, in the WASM heap when there is one (no marshalling copies). */
function withScratch<T>(heap: Heap | null, actBytes: number, apLen: number, body: (act: () => Uint8Array, ap: () => Float32Array) => T,
  arena?: QLinearScratch): T {
  if (!heap) {
    const act = new Uint8Array(actBytes), ap = new Float32Array(apLen);
    return body(() => act, () => ap);
  }
  if (arena && arena.heap === heap) {
    const apOff = Math.ceil(actBytes / 64) * 64;
    const p = arena.take(apOff + apLen * 4);
    return body(() => heap.u8(p, actBytes), () => heap.f32(p + apOff, apLen));
  }
  const pa = heap.alloc(actBytes, 'qlinear activations');
  let pp = -1;
  try {
    pp = heap.alloc(apLen * 4, 'qlinear activation params');
    return body(() => heap.u8(pa, actBytes), () => heap.f32(pp, apLen));
  } finally {
    heap.free(pa);
    if (pp >= 0) heap.free(pp);
  }
}

/**
 * A getter for `arr` that survives memory growth: a view of `heap` is re-created from its offset
 * (allocating scratch may grow memory and detach it); any other array is returned as is.
 */
function fresh<A extends Float32Array>(heap: Heap | null, arr: A): () => Float32Array {
  if (!heap || !heap.owns(arr)) return () => arr;
  const off = arr.byteOffset, n = arr.length;
  return () => heap.f32(off, n);
}

function resolve(opts: QLinearOptions): { k: Kernels; heap: Heap | null } {
  if (opts.kernels) return { k: opts.kernels, heap: opts.heap ?? null };
  return { k: defaultKernels(), heap: opts.heap === undefined ? currentHeap() : opts.heap };
}

function rowsOf(what: string, n: number, inn: number): number {
  if (inn === 0 || n % inn !== 0) throw new LowbitError('E_SHAPE', `${what}: ${n} values are not a whole number of rows of ${inn}`);
  return n / inn;
}

/**
 * Weight-only linear layer: y [M, out] = x [M, in] · dequant(w)ᵀ (+ bias), x in the model's channel
 * order. Fewer than 8 tokens (decode) run the GEMV kernels, which never convert a code to f32 (exact
 * integer dots on 21-bit activations); more (prefill) dequantize 16 weight rows at a time and run the
 * f32 GEMM (src/wasm/qmatmul.ts qmmRoute).
 */
export function qlinear(x: Float32Array, w: QLinear, bias: Float32Array | null = null, opts: QLinearCallOptions = {}): Float32Array {
  const M = rowsOf('qlinear', x.length, w.in);
  if (bias && bias.length !== w.out) throw new LowbitError('E_SHAPE', `qlinear: bias has ${bias.length} values, expected ${w.out}`);
  const { k, heap } = resolve(opts);
  const xs = fresh(heap, x), bs = bias ? fresh(heap, bias) : () => null;
  const ys = outOf('qlinear', heap, opts.out, M * w.out);
  return prepThenQmm(k, heap, M, w, 0, bs, ys, opts.scratch, (ix, act, ap) => k.qPrepF32(M, w.in, xs(), w.nSeg, ix.segc, ix.gatherX, act, ap));
}

/**
 * The body every qlinear entry shares: activation scratch (the arena when given), `prep` filling it from fresh
 * index views, then qmm in `mode` into ys. bs/ys were made before any allocation (heap growth detaches views).
 */
function prepThenQmm(k: Kernels, heap: Heap | null, M: number, w: QLinear, mode: QmmMode, bs: () => Float32Array | null,
  ys: () => Float32Array, arena: QLinearScratch | undefined,
  prep: (ix: ReturnType<QLinear['kernelIndex']>, act: Uint8Array, ap: Float32Array) => void): Float32Array {
  const Kc = w.segc[w.nSeg]!;
  withScratch(heap, M * Kc * ACT_CHUNK_BYTES, M * w.nSeg * 4, (act, ap) => {
    prep(w.kernelIndex(), act(), ap());
    const ix = w.kernelIndex();
    k.qmm(M, w.out, w.nSeg, ix.segc, w.format, mode, w.w, w.rb, w.wp, act(), ap(), bs(), ys(), w.out);
  }, arena);
  return ys();
}

/** A getter for y: `out` (its first n values; a fresh view when in the heap) or a new array. */
function outOf(what: string, heap: Heap | null, out: Float32Array | undefined, n: number): () => Float32Array {
  if (!out) { const y = new Float32Array(n); return () => y; }
  if (out.length < n) throw new LowbitError('E_SHAPE', `${what}: out has ${out.length} values, expected at least ${n}`);
  const g = fresh(heap, out.length === n ? out : out.subarray(0, n));
  return g;
}

/** Static per-cluster activation quantization for `qlinearIntF32`: codes of `bits` bits, one (scale, zero) per segment. */
export interface ActivationQuant {
  bits: number;
  /** Segment offsets over the input columns: must equal the weight's (its clusters, in cluster order). */
  offsets: Int32Array;
  scale: Float32Array;
  zero: Uint8Array;
}

/**
 * Integer × integer linear layer on f32 input: x [M, in] (in the weight's cluster order) is quantized per cluster with
 * the static `act` parameters inside the activation prep (qPrepQuant: code = clamp(round_half_even(x / s) + z, 0,
 * 2^bits − 1)), then runs as `qlinearInt`. The same result, bit for bit, as `quantize` (perCluster, the same
 * parameters) followed by `qlinearInt`, without the packed and unpacked code arrays (the RPTQ decoder's W4A8/W4A4 path).
 */
export function qlinearIntF32(x: Float32Array, act: ActivationQuant, w: QLinear, bias: Float32Array | null = null, opts: QLinearCallOptions = {}): Float32Array {
  const M = rowsOf('qlinearIntF32', x.length, w.in);
  if (act.offsets.length !== w.offsets.length || act.offsets.some((v, i) => v !== w.offsets[i])) {
    throw new LowbitError('E_ARG', 'qlinearIntF32: activation clusters (offsets) differ from the weight\'s');
  }
  if (w.perm !== null) throw new LowbitError('E_ARG', 'qlinearIntF32: the weight has a cluster permutation; x must already be in cluster order (use quantize + qlinearInt)');
  if (!Number.isInteger(act.bits) || act.bits < 2 || act.bits > 8) throw new LowbitError('E_ARG', `qlinearIntF32: activation bits must be 2..8, got ${act.bits}`);
  if (act.scale.length !== w.nSeg || act.zero.length !== w.nSeg) {
    throw new LowbitError('E_SHAPE', `qlinearIntF32: activation needs ${w.nSeg} scales and zeros, got ${act.scale.length} and ${act.zero.length}`);
  }
  if (bias && bias.length !== w.out) throw new LowbitError('E_SHAPE', `qlinearIntF32: bias has ${bias.length} values, expected ${w.out}`);
  const mode: QmmMode = act.bits <= 7 ? 1 : 2;
  const { k, heap } = resolve(opts);
  const xs = fresh(heap, x), bs = bias ? fresh(heap, bias) : () => null;
  const ys = outOf('qlinearIntF32', heap, opts.out, M * w.out);
  return prepThenQmm(k, heap, M, w, mode, bs, ys, opts.scratch,
    (ix, a, ap) => k.qPrepQuant(M, w.in, xs(), w.nSeg, ix.segc, ix.gatherQ, act.scale, act.zero, 1, act.bits, a, ap));
}

/**
 * Integer × integer linear layer: `a` holds activation codes [M, in] quantized with the SAME
 * segments (clusters, in cluster order) as the weight, per-cluster (rowPeriod 1) or per token
 * (rowPeriod M) — e.g. `quantize(x, {bits, granularity: {kind: 'perCluster', clusters}})`.
 * y[m, n] = Σ_c s_w[n,c]·s_a[m,c]·Σ_{i∈c} (qw − zw)(qa − za) (+ bias), integer dots, one f32 rescale
 * per (row, cluster). The kernels dot the weight codes with the activation codes minus their zero
 * point (one i32x4.dot_i16x8_s per 8 codes; on the relaxed binary, codes of ≤ 7 bits against u4/u3/u2
 * weights take one i8×i7 dot per 16 codes for two or more tokens): qgemv_int for one token, the
 * register-blocked qgemm for more (assembly/qmatmul.ts).
 */
export function qlinearInt(a: QuantizedTensor, w: QLinear, bias: Float32Array | null = null, opts: QLinearCallOptions = {}): Float32Array {
  if (a.cols !== w.in) throw new LowbitError('E_SHAPE', `qlinearInt: activation has ${a.cols} columns, weight has ${w.in}`);
  if (a.offsets.length !== w.offsets.length || a.offsets.some((v, i) => v !== w.offsets[i])) {
    throw new LowbitError('E_ARG', 'qlinearInt: activation clusters (offsets) differ from the weight\'s');
  }
  if ((a.perm === null) !== (w.perm === null) || (a.perm && a.perm.some((v, i) => v !== w.perm![i]))) {
    throw new LowbitError('E_ARG', 'qlinearInt: activation cluster permutation differs from the weight\'s');
  }
  const M = a.rows;
  if (!(a.rowPeriod === 1 || a.rowPeriod === M)) throw new LowbitError('E_ARG', `qlinearInt: activation rowPeriod must be 1 or ${M}`);
  if (a.qs.length !== packedBytes(a.format, M, a.cols)) throw new LowbitError('E_SHAPE', `qlinearInt: ${a.qs.length} packed activation bytes do not match ${a.format} [${M}, ${a.cols}]`);
  const slots = Math.min(a.rowPeriod, M) * w.nSeg;
  if (a.scale.length !== slots || a.zero.length !== slots) throw new LowbitError('E_SHAPE', `qlinearInt: activation needs ${slots} scales and zeros, got ${a.scale.length} and ${a.zero.length}`);
  if (bias && bias.length !== w.out) throw new LowbitError('E_SHAPE', `qlinearInt: bias has ${bias.length} values, expected ${w.out}`);
  const bitsA = a.scheme.bits;
  const mode: QmmMode = bitsA <= 7 ? 1 : 2;
  const { k, heap } = resolve(opts);
  // offsets of heap views are taken before any kernel call: unpacking may grow memory and detach them
  const bs = bias ? fresh(heap, bias) : () => null;
  const ys = outOf('qlinearInt', heap, opts.out, M * w.out);
  // u8 rows whose width is a whole number of 16-code blocks are the codes themselves (formats.ts U8): no unpacking
  // (unless they live in the heap, where the scratch allocation below could detach the view)
  const asIs = a.format === 'u8' && a.cols % 16 === 0 && !(heap && heap.owns(a.qs));
  const codes = asIs ? a.qs : new Uint8Array(M * a.cols);
  if (!asIs) k.unpackCodes(M, a.cols, a.format, a.qs, codes);
  return prepThenQmm(k, heap, M, w, mode, bs, ys, opts.scratch,
    (ix, act, ap) => k.qPrepCodes(M, a.cols, codes, w.nSeg, ix.segc, ix.gatherQ, a.scale, a.zero, a.rowPeriod, bitsA, act, ap));
}
