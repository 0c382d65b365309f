// GPTQ (IST-DASLab/gptq gptq.py fasterquant): reconstruction error vs RTN, agreement with a literal
// transcription of the reference column loop, f64 linear algebra, damping retry and bad-input errors.

import { describe, it, expect, beforeAll } from 'vitest';
import { createBackend, type Backend } from '../src/runtime.js';
import { refKernels } from '../src/ref/index.js';
import { withChecks, type Kernels } from '../src/kernels/index.js';
import { dequantize } from '../src/quant/quantize.js';
import { mulberry32 } from '../src/models/opt/sample.js';
import { quantizeValue, dequantizeValue } from '../src/quant/round.js';
import {
  addBatch, createHessian, gptqQuantize, rtnQuantize, findParams, choleskyInPlace, choleskyInverse,
  upperCholeskyOfInverse, upperCholeskyOfInverseReference, type Hessian, type GPTQOptions,
} from '../src/quant/gptq/index.js';
import { encodeGPTQLinear } from '../src/quant/gptq/autogptq.js';
import { qparamsFromRange } from '../src/quant/range.js';
import { expectLowbit } from './helpers.js';

const f = Math.fround;

function gauss(rng: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

/**
 * Calibration inputs with correlated features and outlier channels: X = Z·A + 0.3·noise with 128
 * latent factors, then 8 channels scaled by 10..30 (as OPT's LayerNorm outlier channels are).
 */
function correlatedInputs(n: number, cols: number, seed: number): Float32Array {
  const rng = mulberry32(seed), r = 128;
  const A = Float64Array.from({ length: r * cols }, () => gauss(rng));
  const x = new Float32Array(n * cols);
  const z = new Float64Array(r);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < r; i++) z[i] = gauss(rng);
    for (let c = 0; c < cols; c++) {
      let s = 0;
      for (let i = 0; i < r; i++) s += z[i]! * A[i * cols + c]!;
      x[t * cols + c] = s / Math.sqrt(r) + 0.3 * gauss(rng);
    }
  }
  const outl = mulberry32(seed + 1);
  for (let o = 0; o < 8; o++) {
    const c = Math.floor(outl() * cols), sc = 10 + 20 * outl();
    for (let t = 0; t < n; t++) x[t * cols + c] = x[t * cols + c]! * sc;
  }
  return x;
}

function randomWeight(rows: number, cols: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  return Float32Array.from({ length: rows * cols }, () => 0.02 * gauss(rng));
}

function hessianOf(k: Kernels, x: Float32Array, n: number, cols: number, perSample: number): Hessian {
  const h = createHessian(cols);
  for (let t = 0; t < n; t += perSample) addBatch(h, k, x.subarray(t * cols, (t + perSample) * cols), Math.min(perSample, n - t), 1);
  return h;
}

/** ‖W·Xᵀ − Q·Xᵀ‖² (Frobenius), via the GEMM. */
function layerError(k: Kernels, w: Float32Array, q: Float32Array, x: Float32Array, rows: number, cols: number, n: number): number {
  const d = Float32Array.from(w, (v, i) => v - q[i]!);
  const y = new Float32Array(n * rows);
  k.sgemmNT(n, rows, cols, x, cols, d, cols, y, rows, null);
  let s = 0;
  for (const v of y) s += v * v;
  return s;
}

let simd: Backend;
beforeAll(async () => { simd = await createBackend('simd'); });

describe('GPTQ reconstruction error beats RTN (correlated inputs with outlier channels)', () => {
  const rows = 256, cols = 512, n = 2048;
  // thresholds: GPTQ / RTN < 0.35 (measured 0.11–0.18, printed below); the reference gains only ~12% on uncorrelated X
  const settings: Array<{ bits: number; groupSize?: number; actOrder: boolean; max: number }> = [
    { bits: 4, actOrder: false, max: 0.35 },
    { bits: 4, actOrder: true, max: 0.35 },
    { bits: 4, groupSize: 128, actOrder: false, max: 0.35 },
    { bits: 3, actOrder: false, max: 0.35 },
    { bits: 3, groupSize: 128, actOrder: false, max: 0.35 },
    { bits: 2, groupSize: 64, actOrder: true, max: 0.35 },
  ];
  it('GPTQ/RTN ratio for the six settings', () => {
    const k = simd.kernels;
    const x = correlatedInputs(n, cols, 7);
    const w = randomWeight(rows, cols, 11);
    const H = hessianOf(k, x, n, cols, 128);
    const table: string[] = ['bits  group  act-order  GPTQ err     RTN err      GPTQ/RTN'];
    for (const s of settings) {
      const opts: GPTQOptions = { bits: s.bits, actOrder: s.actOrder, kernels: k, name: 'synthetic' };
      if (s.groupSize) opts.groupSize = s.groupSize;
      const g = gptqQuantize(w, rows, cols, H, opts);
      const rtn = rtnQuantize(w, rows, cols, s.groupSize ? { bits: s.bits, groupSize: s.groupSize } : { bits: s.bits });
      const eg = layerError(k, w, g.dequantized, x, rows, cols, n), er = layerError(k, w, rtn, x, rows, cols, n);
      const ratio = eg / er;
      table.push(`${String(s.bits).padEnd(6)}${String(s.groupSize ?? 'none').padEnd(7)}${String(s.actOrder).padEnd(11)}${eg.toExponential(3).padEnd(13)}${er.toExponential(3).padEnd(13)}${ratio.toFixed(3)}`);
      expect(ratio).toBeLessThan(s.max);
      // the dequantized weight is what lowbit's QuantizedTensor holds
      expect(Array.from(dequantize(g.quantized, { kernels: k }).data as Float32Array)).toEqual(Array.from(g.dequantized));
    }
    console.log(table.join('\n'));
  });
});

describe('GPTQ with groups of unequal widths (groupOffsets: RPTQ clusters as groups)', () => {
  const rows = 64, cols = 256, n = 1024;
  it('equal offsets reproduce groupSize bit for bit (dynamic, static, act-order + static)', () => {
    const k = simd.kernels;
    const x = correlatedInputs(n, cols, 3), w = randomWeight(rows, cols, 5), H = hessianOf(k, x, n, cols, 128);
    const offsets = Int32Array.from({ length: cols / 32 + 1 }, (_, g) => g * 32);
    for (const o of [{}, { staticGroups: true }, { staticGroups: true, actOrder: true }]) {
      const a = gptqQuantize(w, rows, cols, H, { bits: 3, groupSize: 32, kernels: k, ...o });
      const b = gptqQuantize(w, rows, cols, H, { bits: 3, groupOffsets: offsets, kernels: k, ...o });
      expect(Buffer.from(b.dequantized.buffer).equals(Buffer.from(a.dequantized.buffer))).toBe(true);
      expect(Array.from(b.scale)).toEqual(Array.from(a.scale));
      expect(Array.from(b.zero)).toEqual(Array.from(a.zero));
      expect(Array.from(b.gIdx)).toEqual(Array.from(a.gIdx));
      expect(b.loss).toBe(a.loss);
      expect(Array.from(dequantize(b.quantized, { kernels: k }).data as Float32Array)).toEqual(Array.from(b.dequantized));
    }
  });

  it('unequal groups: parameters per (row × group), and GPTQ beats RTN on the same grid', () => {
    const k = simd.kernels;
    const x = correlatedInputs(n, cols, 9), w = randomWeight(rows, cols, 13), H = hessianOf(k, x, n, cols, 128);
    // 13 groups of 5 to 37 columns (a cluster map's offsets)
    const sizes = [5, 37, 20, 11, 30, 24, 9, 33, 16, 28, 7, 19, 17];
    const offsets = Int32Array.from([0, ...sizes.map((_, i) => sizes.slice(0, i + 1).reduce((p, v) => p + v, 0))]);
    expect(offsets[offsets.length - 1]).toBe(cols);
    for (const bits of [4, 3]) {
      const g = gptqQuantize(w, rows, cols, H, { bits, groupOffsets: offsets, kernels: k, name: 'clusters' });
      expect(g.nGroups).toBe(13);
      expect(g.quantized.scheme.granularity.kind).toBe('perRowCluster');
      expect(Array.from(g.quantized.offsets)).toEqual(Array.from(offsets));
      for (let c = 0; c < cols; c++) expect(g.gIdx[c]).toBe(offsets.findIndex((o, i) => c >= o && c < offsets[i + 1]!));
      // every dequantized value lies on its row × group's grid: s·(q − z) with q an integer code
      for (let r = 0; r < rows; r += 7) {
        for (let c = 0; c < cols; c += 3) {
          const p = r * 13 + g.gIdx[c]!, q = g.dequantized[r * cols + c]! / g.scale[p]! + g.zero[p]!;
          expect(Math.abs(q - Math.round(q))).toBeLessThan(1e-3);
        }
      }
      // RTN on the same grid: GPTQ's quantizer (find_params) per row × group, round to nearest
      const rtn = new Float32Array(rows * cols), sc = new Float32Array(rows * 13), zr = new Uint8Array(rows * 13), maxq = 2 ** bits - 1;
      for (let gi = 0; gi < 13; gi++) findParams(w, rows, cols, offsets[gi]!, offsets[gi + 1]! - offsets[gi]!, bits, false, null, sc, zr, 13, gi);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const p = r * 13 + g.gIdx[c]!;
          rtn[r * cols + c] = dequantizeValue(quantizeValue(w[r * cols + c]!, sc[p]!, zr[p]!, maxq), sc[p]!, zr[p]!);
        }
      }
      const ratio = layerError(k, w, g.dequantized, x, rows, cols, n) / layerError(k, w, rtn, x, rows, cols, n);
      expect(ratio).toBeLessThan(0.5);
      // AutoGPTQ's layout has one group_size: unequal groups do not export
      expectLowbit(() => encodeGPTQLinear(g, 'gptq_v2', 'clusters', k), 'E_UNSUPPORTED', 'clusters', 'unequal widths');
    }
  });

  it('bad groupOffsets are E_ARG naming the problem', () => {
    const k = withChecks(refKernels());
    const w = randomWeight(4, 8, 1), h = createHessian(8);
    for (let i = 0; i < 8; i++) h.h[i * 8 + i] = 1;
    const bad = (o: Partial<GPTQOptions>, ...msg: string[]) => expectLowbit(() => gptqQuantize(w, 4, 8, h, { bits: 4, kernels: k, ...o }), 'E_ARG', ...msg);
    bad({ groupOffsets: Int32Array.from([0, 4, 7]) }, 'from 0 to the 8 columns');
    bad({ groupOffsets: Int32Array.from([1, 4, 8]) }, 'from 0 to the 8 columns');
    bad({ groupOffsets: Int32Array.from([0, 5, 5, 8]) }, 'groupOffsets[2] = 5 does not exceed groupOffsets[1] = 5');
    bad({ groupOffsets: Int32Array.from([0, 4, 8]), groupSize: 4 }, 'not both');
    bad({ groupOffsets: Int32Array.from([0, 4, 8]), actOrder: true }, 'needs staticGroups');
    expect(gptqQuantize(w, 4, 8, h, { bits: 4, kernels: k, groupOffsets: Int32Array.from([0, 3, 8]), actOrder: true, staticGroups: true }).nGroups).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------
// A literal transcription of gptq.py fasterquant (column-major torch ops, f32), with quant.py's
// find_params: the oracle for gptqQuantize's row-major, block-hoisted implementation.
// ---------------------------------------------------------------------------------------------

function findParamsLiteral(Wm: Float32Array[], c0: number, c1: number, bits: number, sym: boolean): { scale: number[]; zero: number[] } {
  // Wm[c] is column c (rows values); x = W[:, c0:c1], per row
  const rows = Wm[0]!.length, maxq = 2 ** bits - 1, scale: number[] = [], zero: number[] = [];
  for (let r = 0; r < rows; r++) {
    let xmin = 0, xmax = 0;
    for (let c = c0; c < c1; c++) { xmin = Math.min(xmin, Wm[c]![r]!); xmax = Math.max(xmax, Wm[c]![r]!); }
    if (sym) { xmax = Math.max(Math.abs(xmin), xmax); if (xmin < 0) xmin = -xmax; }
    if (xmin === 0 && xmax === 0) { xmin = -1; xmax = 1; }
    const s = f(f(xmax - xmin) / maxq);
    scale.push(s);
    zero.push(sym ? (maxq + 1) / 2 : Math.round(f(-xmin / s)) - (Math.abs(f(-xmin / s) % 1) === 0.5 && Math.round(f(-xmin / s)) % 2 !== 0 ? 1 : 0));
  }
  return { scale, zero };
}

function fasterquantLiteral(W0: Float32Array, rows: number, cols: number, H0: Float64Array, U: Float32Array, o: { bits: number; sym: boolean; groupsize: number; actorder: boolean; static_groups: boolean; blocksize: number }): Float32Array {
  // W as columns (W[:, c])
  let W: Float32Array[] = Array.from({ length: cols }, (_, c) => Float32Array.from({ length: rows }, (_, r) => W0[r * cols + c]!));
  const maxq = 2 ** o.bits - 1;
  let quantizer = o.groupsize === -1 ? findParamsLiteral(W, 0, cols, o.bits, o.sym) : { scale: [] as number[], zero: [] as number[] };
  const H = H0.slice();
  for (let c = 0; c < cols; c++) if (H[c * cols + c] === 0) { H[c * cols + c] = 1; W[c]!.fill(0); }
  const groups: Array<{ scale: number[]; zero: number[] }> = [];
  if (o.static_groups) for (let i = 0; i < cols; i += o.groupsize) groups.push(findParamsLiteral(W, i, i + o.groupsize, o.bits, o.sym));
  let perm: number[] = [];
  if (o.actorder) {
    perm = Array.from({ length: cols }, (_, i) => i).sort((a, b) => (H[b * cols + b]! - H[a * cols + a]!) || a - b);
    W = perm.map((p) => W[p]!);
  }
  const Q: Float32Array[] = Array.from({ length: cols }, () => new Float32Array(rows));
  const Hinv = (i: number, j: number) => U[i * cols + j]!;
  for (let i1 = 0; i1 < cols; i1 += o.blocksize) {
    const i2 = Math.min(i1 + o.blocksize, cols), count = i2 - i1;
    const W1 = W.slice(i1, i2).map((c) => c.slice());
    const Err1: Float32Array[] = Array.from({ length: count }, () => new Float32Array(rows));
    for (let i = 0; i < count; i++) {
      const w = W1[i]!, d = Hinv(i1 + i, i1 + i);
      if (o.groupsize !== -1) {
        if (!o.static_groups) {
          if ((i1 + i) % o.groupsize === 0) quantizer = findParamsLiteral(W, i1 + i, i1 + i + o.groupsize, o.bits, o.sym);
        } else {
          let idx = i1 + i;
          if (o.actorder) idx = perm[idx]!;
          quantizer = groups[Math.floor(idx / o.groupsize)]!;
        }
      }
      for (let r = 0; r < rows; r++) {
        const q = dequantizeValue(quantizeValue(w[r]!, quantizer.scale[r]!, quantizer.zero[r]!, maxq), quantizer.scale[r]!, quantizer.zero[r]!);
        Q[i1 + i]![r] = q;
        const err1 = f(f(w[r]! - q) / d);
        for (let j = i; j < count; j++) W1[j]![r] = f(W1[j]![r]! - f(err1 * Hinv(i1 + i, i1 + j)));
        Err1[i]![r] = err1;
      }
    }
    // W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:]) (sum over the block in f64, rounded once, as the js sgemmNN)
    for (let j = i2; j < cols; j++) {
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let i = 0; i < count; i++) s += Err1[i]![r]! * Hinv(i1 + i, j);
        W[j]![r] = f(W[j]![r]! - f(s));
      }
    }
  }
  const out = new Float32Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    const c = o.actorder ? perm[j]! : j;
    for (let r = 0; r < rows; r++) out[r * cols + c] = Q[j]![r]!;
  }
  return out;
}

describe('gptqQuantize agrees with a literal transcription of fasterquant', () => {
  const k = withChecks(refKernels());
  const rows = 12, cols = 96, n = 400;
  const x = correlatedInputs(n, cols, 3);
  const w = randomWeight(rows, cols, 5);
  const H = hessianOf(k, x, n, cols, 50);
  // one dead column
  const Hd = { ...H, h: H.h.slice() };
  for (let j = 0; j < cols; j++) { Hd.h[5 * cols + j] = 0; Hd.h[j * cols + 5] = 0; }
  const cases: Array<[string, Partial<GPTQOptions>]> = [
    ['4-bit per row', { bits: 4 }],
    ['3-bit act-order', { bits: 3, actOrder: true }],
    ['4-bit groups 32 (block 40: groups start inside blocks)', { bits: 4, groupSize: 32, blockSize: 40 }],
    ['3-bit groups 16 act-order', { bits: 3, groupSize: 16, actOrder: true, blockSize: 32 }],
    ['2-bit static groups 32 act-order', { bits: 2, groupSize: 32, actOrder: true, staticGroups: true, blockSize: 24 }],
    ['4-bit symmetric groups 48', { bits: 4, groupSize: 48, symmetric: true }],
  ];
  for (const [label, o] of cases) {
    for (const [hl, hs] of [['', H], [' + dead column', Hd]] as const) {
      it(label + hl, () => {
        const opts = { kernels: k, ...o } as GPTQOptions;
        const got = gptqQuantize(w, rows, cols, hs, opts);
        // the literal loop consumes the same U (damped, permuted H; tested separately below)
        const Hp = hs.h.slice();
        for (let c = 0; c < cols; c++) if (Hp[c * cols + c] === 0) Hp[c * cols + c] = 1;
        let perm: number[] | null = null;
        if (opts.actOrder) perm = Array.from({ length: cols }, (_, i) => i).sort((a, b) => (Hp[b * cols + b]! - Hp[a * cols + a]!) || a - b);
        const P = perm ? Float64Array.from({ length: cols * cols }, (_, i) => Hp[perm![Math.floor(i / cols)]! * cols + perm![i % cols]!]!) : Hp;
        let mean = 0;
        for (let c = 0; c < cols; c++) mean += P[c * cols + c]!;
        for (let c = 0; c < cols; c++) P[c * cols + c]! += 0.01 * mean / cols;
        const U = Float32Array.from(upperCholeskyOfInverse(P, cols).u!);
        const want = fasterquantLiteral(w, rows, cols, hs.h, U, {
          bits: opts.bits, sym: opts.symmetric ?? false, groupsize: opts.groupSize ?? -1, actorder: opts.actOrder ?? false,
          static_groups: opts.staticGroups ?? false, blocksize: opts.blockSize ?? 128,
        });
        expect(Array.from(got.dequantized)).toEqual(Array.from(want));
        expect(Array.from(dequantize(got.quantized, { kernels: k }).data as Float32Array)).toEqual(Array.from(want));
        expect(got.deadColumns).toBe(hl ? 1 : 0);
        if (hl) for (let r = 0; r < rows; r++) expect(got.dequantized[r * cols + 5]).toBe(0);
      });
    }
  }

  it('g_idx: group of each original column (act-order: position in the permuted order / groupSize; static: column / groupSize)', () => {
    const a = gptqQuantize(w, rows, cols, H, { bits: 4, groupSize: 32, actOrder: true, kernels: k });
    for (let j = 0; j < cols; j++) expect(a.gIdx[a.perm![j]!]).toBe(Math.floor(j / 32));
    const s = gptqQuantize(w, rows, cols, H, { bits: 4, groupSize: 32, actOrder: true, staticGroups: true, kernels: k });
    for (let j = 0; j < cols; j++) expect(s.gIdx[j]).toBe(Math.floor(j / 32));
    expect(Array.from(gptqQuantize(w, rows, cols, H, { bits: 4, kernels: k }).gIdx).every((g) => g === 0)).toBe(true);
  });

  it('find_params asymmetric equals lowbit qparamsFromRange; symmetric is GPTQ\'s (2·absmax/maxq, (maxq+1)/2)', () => {
    const x1 = Float32Array.from([-0.3, 0.1, 0.25, -0.05, 0, 0, 0, 0, 0.2, 0.4, 0.1, 0.3]);
    const s = new Float32Array(3), z = new Uint8Array(3);
    findParams(x1, 3, 4, 0, 4, 4, false, null, s, z);
    for (let r = 0; r < 3; r++) {
      let lo = 0, hi = 0;
      for (let j = 0; j < 4; j++) { lo = Math.min(lo, x1[r * 4 + j]!); hi = Math.max(hi, x1[r * 4 + j]!); }
      const p = qparamsFromRange(lo, hi, 4, false);
      expect([s[r], z[r]]).toEqual([p.scale, p.zero]);
    }
    findParams(x1, 3, 4, 0, 4, 4, true, null, s, z);
    expect(s[0]).toBe(f(f(0.3 + f(0.3)) / 15));
    expect(z[0]).toBe(8);
    expect(s[2]).toBe(f(f(0.4) / 15)); // all ≥ 0: the reference keeps xmin = 0 with zero 8
  });
});

describe('f64 linear algebra', () => {
  const n = 64;
  const rng = mulberry32(9);
  const X = Float64Array.from({ length: 3 * n * n }, () => gauss(rng));
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { let s = 0; for (let t = 0; t < 3 * n; t++) s += X[t * n + i]! * X[t * n + j]!; A[i * n + j] = s; }
  for (let i = 0; i < n; i++) A[i * n + i]! += 1;
  const TOL = 1e-10; // relative to max |entry|; f64 with condition numbers ~1e2..1e3

  it('Cholesky: L·Lᵀ = A, lower triangular', () => {
    const L = A.slice();
    expect(choleskyInPlace(L, n)).toBe(-1);
    let err = 0, mx = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      if (j > i) expect(L[i * n + j]).toBe(0);
      let s = 0;
      for (let t = 0; t < n; t++) s += L[i * n + t]! * L[j * n + t]!;
      err = Math.max(err, Math.abs(s - A[i * n + j]!));
      mx = Math.max(mx, Math.abs(A[i * n + j]!));
    }
    expect(err / mx).toBeLessThan(TOL);
  });

  it('cholesky_inverse: A · A⁻¹ = I; U (flip trick) equals the reference three-step path and Uᵀ·U = A⁻¹', () => {
    const L = A.slice();
    choleskyInPlace(L, n);
    const inv = choleskyInverse(L, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < n; t++) s += A[i * n + t]! * inv[t * n + j]!;
      expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(1e-10);
    }
    const U = upperCholeskyOfInverse(A, n).u!;
    const R = upperCholeskyOfInverseReference(A, n)!;
    let d = 0, mx = 0;
    for (let i = 0; i < n * n; i++) { d = Math.max(d, Math.abs(U[i]! - R[i]!)); mx = Math.max(mx, Math.abs(R[i]!)); }
    expect(d / mx).toBeLessThan(TOL);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(U[i * n + j]).toBe(0);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < n; t++) s += U[t * n + i]! * U[t * n + j]!;
      expect(Math.abs(s - inv[i * n + j]!)).toBeLessThan(TOL * 10);
    }
  });

  it('a non-positive-definite matrix reports its failing row', () => {
    const B = A.slice();
    B[10 * n + 10] = -1;
    expect(choleskyInPlace(B.slice(), n)).toBe(10);
    expect(upperCholeskyOfInverse(B, n).failedRow).toBeGreaterThanOrEqual(0);
  });
});

describe('damping retry and bad input', () => {
  const k = withChecks(refKernels());
  const rows = 4, cols = 8;
  const w = randomWeight(rows, cols, 1);
  /** An indefinite "Hessian": diag 1, a −3 off-diagonal pair (eigenvalue −2): damping 0.01, 0.1 and 1 fail; 10 works. */
  const indefinite = (): Hessian => {
    const h = createHessian(cols);
    for (let i = 0; i < cols; i++) h.h[i * cols + i] = 1;
    h.h[1] = -3; h.h[cols] = -3;
    h.nSamples = 1;
    return h;
  };

  it('retries with 10× damping and records it', () => {
    const r = gptqQuantize(w, rows, cols, indefinite(), { bits: 4, kernels: k, name: 'layers.0.fc1' });
    expect(r.dampRetries).toBe(3);
    expect(r.percDamp).toBeCloseTo(10, 10);
  });

  it('E_NUMERIC naming the layer after the retry limit', () => {
    expectLowbit(() => gptqQuantize(w, rows, cols, indefinite(), { bits: 4, kernels: k, name: 'layers.3.self_attn.q_proj', maxDampRetries: 2 }),
      'E_NUMERIC', 'layers.3.self_attn.q_proj', 'not positive definite', '2 retries');
  });

  it('E_NONFINITE for NaN in the Hessian, naming the layer and entry', () => {
    const h = createHessian(cols);
    for (let i = 0; i < cols; i++) h.h[i * cols + i] = 1;
    h.h[2 * cols + 3] = NaN;
    expectLowbit(() => gptqQuantize(w, rows, cols, h, { bits: 4, kernels: k, name: 'layers.1.fc2' }), 'E_NONFINITE', 'layers.1.fc2', '[2, 3]', 'NaN');
  });

  it('E_ARG for a group size that does not divide the columns', () => {
    const h = createHessian(cols);
    for (let i = 0; i < cols; i++) h.h[i * cols + i] = 1;
    expectLowbit(() => gptqQuantize(w, rows, cols, h, { bits: 4, groupSize: 3, kernels: k, name: 'l' }), 'E_ARG', 'groupSize 3', '8 columns');
    expectLowbit(() => rtnQuantize(w, rows, cols, { bits: 4, groupSize: 5 }), 'E_ARG', 'groupSize 5');
  });

  it('E_SHAPE for a Hessian of the wrong size; E_ARG for bad bits', () => {
    expectLowbit(() => gptqQuantize(w, rows, cols, createHessian(7), { bits: 4, kernels: k }), 'E_SHAPE', '7 × 7');
    expectLowbit(() => gptqQuantize(w, rows, cols, createHessian(cols), { bits: 9, kernels: k }), 'E_ARG', 'bits');
  });

  it('does not mutate the weight or the Hessian', () => {
    const h = indefinite(), h0 = h.h.slice(), w0 = w.slice();
    gptqQuantize(w, rows, cols, h, { bits: 3, actOrder: true, kernels: k });
    expect(h.h).toEqual(h0);
    expect(w).toEqual(w0);
  });
});
