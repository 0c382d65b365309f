// Float tensor ops the decoder needs, on the current backend's kernels. Each op validates dtypes
// and shapes at this boundary (LowbitError E_DTYPE / E_SHAPE naming the shapes), works out strides,
// and hands the kernel typed arrays and integers only.
//
// NaN policy: matmul, linear, add, mul, relu, gelu, layerNorm and softmax propagate NaN and Inf the
// way IEEE arithmetic does (as PyTorch does); argmax returns the first NaN's index (torch.argmax).
// embedding takes integer ids only and rejects out-of-range ones (E_RANGE).

import { LowbitError, fmtShape } from './errors.js';
import { currentBackend } from './runtime.js';
import { Tensor, sizeOf, type DType } from './tensor.js';
import type { Heap } from './wasm/heap.js';

function needDtype(op: string, name: string, t: Tensor, dtype: DType): void {
  if (!(t instanceof Tensor)) throw new LowbitError('E_ARG', `${op}: ${name} must be a Tensor`);
  if (t.dtype !== dtype) {
    throw new LowbitError('E_DTYPE', `${op}: ${name} ${fmtShape(t.shape)} has dtype ${t.dtype}, expected ${dtype}` +
      (t.dtype === 'f16' ? ' (f16 is storage only: call .astype("f32"))' : ''));
  }
}

/** Outputs go where the inputs are: resident in WASM memory if the first input is. */
function placeOf(...ts: Tensor[]): { heap: Heap | null } {
  const heap = currentBackend().heap;
  return { heap: heap && ts.some((t) => t.heap === heap) ? heap : null };
}

/** Contiguous f32 data of a tensor (copying a strided view). */
function dense(t: Tensor): Float32Array {
  return (t.isContiguous ? t : t.contiguous()).data as Float32Array;
}

/**
 * How to hand b[..., K, N] to a kernel without copying: NN with ldb when rows are contiguous, NT
 * when b is a transposed view of a row-major [..., N, K] (e.g. `w.transpose()`), else null.
 */
function bLayout(b: Tensor): { trans: boolean; ld: number; batchStride: number } | null {
  const nd = b.ndim, K = b.shape[nd - 2]!, N = b.shape[nd - 1]!;
  const rs = b.strides[nd - 2]!, cs = b.strides[nd - 1]!;
  let lay: { trans: boolean; ld: number } | null = null;
  if ((cs === 1 || N <= 1) && (K <= 1 || rs >= N)) lay = { trans: false, ld: K <= 1 ? Math.max(N, 1) : rs };
  else if ((rs === 1 || K <= 1) && (N <= 1 || cs >= K)) lay = { trans: true, ld: N <= 1 ? Math.max(K, 1) : cs };
  if (!lay) return null;
  if (nd === 2) return { ...lay, batchStride: 0 };
  // batch dims must step over whole matrices uniformly
  const step = b.strides[nd - 3]!;
  for (let d = nd - 4, want = step * b.shape[nd - 3]!; d >= 0; d--) {
    if (b.shape[d]! > 1 && b.strides[d] !== want) return null;
    want *= b.shape[d]!;
  }
  return { ...lay, batchStride: step };
}

/**
 * Matrix product a[..., M, K] · b[..., K, N] → [..., M, N]. b may be 2-D (shared by every batch) or
 * have the same leading dims as a. A transposed view of a [N, K] matrix (e.g. `w.transpose()`) is
 * used in place by the NT kernel; M = 1 is the GEMV case.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  needDtype('matmul', 'a', a, 'f32');
  needDtype('matmul', 'b', b, 'f32');
  if (a.ndim < 2 || b.ndim < 2) {
    throw new LowbitError('E_SHAPE', `matmul: operands need at least 2 dims, got a ${fmtShape(a.shape)} and b ${fmtShape(b.shape)}`);
  }
  const M = a.shape[a.ndim - 2]!, K = a.shape[a.ndim - 1]!;
  const K2 = b.shape[b.ndim - 2]!, N = b.shape[b.ndim - 1]!;
  const batchA = a.shape.slice(0, -2);
  if (K !== K2 || (b.ndim !== 2 && fmtShape(batchA) !== fmtShape(b.shape.slice(0, -2)))) {
    throw new LowbitError('E_SHAPE', `matmul: a ${fmtShape(a.shape)} and b ${fmtShape(b.shape)} do not align (need a[..., M, K] · b[..., K, N])`);
  }
  const out = Tensor.empty([...batchA, M, N], 'f32', placeOf(a, b));
  const k = currentBackend().kernels;
  const ad = dense(a), od = out.data as Float32Array;
  let bt = b, lay = bLayout(b);
  if (!lay) { bt = b.contiguous(); lay = bLayout(bt)!; }
  const bd = bt.storageView() as Float32Array;
  for (let i = 0, batch = sizeOf(batchA); i < batch; i++) {
    const av = ad.subarray(i * M * K), bv = bd.subarray(bt.offset + i * lay.batchStride), c = od.subarray(i * M * N);
    if (lay.trans) k.sgemmNT(M, N, K, av, K, bv, lay.ld, c, N, null);
    else k.sgemmNN(M, N, K, av, K, bv, lay.ld, c, N, null);
  }
  return out;
}

/** Linear layer with Hugging Face weight layout: x[..., K] · w[N, K]ᵀ + bias[N] → [..., N]. */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  needDtype('linear', 'x', x, 'f32');
  needDtype('linear', 'weight', w, 'f32');
  if (bias) needDtype('linear', 'bias', bias, 'f32');
  const K = x.shape[x.ndim - 1];
  if (x.ndim < 1 || w.ndim !== 2 || w.shape[1] !== K || (bias && (bias.ndim !== 1 || bias.shape[0] !== w.shape[0]))) {
    throw new LowbitError('E_SHAPE', `linear: x ${fmtShape(x.shape)}, weight ${fmtShape(w.shape)}` +
      `${bias ? `, bias ${fmtShape(bias.shape)}` : ''} do not align (need x[..., K], weight [N, K], bias [N])`);
  }
  const N = w.shape[0]!, M = x.size / K!;
  const out = Tensor.empty([...x.shape.slice(0, -1), N], 'f32', placeOf(x, w));
  currentBackend().kernels.sgemmNT(M, N, K!, dense(x), K!, dense(w), K!, out.data as Float32Array, N, bias ? dense(bias) : null);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------

function binary(op: 'add' | 'mul', a: Tensor, b: Tensor): Tensor {
  needDtype(op, 'a', a, 'f32');
  needDtype(op, 'b', b, 'f32');
  const k = currentBackend().kernels;
  const out = Tensor.empty(a.shape, 'f32', placeOf(a, b));
  const same = fmtShape(a.shape) === fmtShape(b.shape);
  const suffix = b.ndim <= a.ndim && fmtShape(a.shape.slice(a.ndim - b.ndim)) === fmtShape(b.shape);
  if (same) {
    k[op](a.size, dense(a), dense(b), out.data as Float32Array);
  } else if (suffix && op === 'add') {
    k.addRow(a.size / Math.max(b.size, 1), b.size, dense(a), dense(b), out.data as Float32Array);
  } else if (suffix) {
    const ad = dense(a), bd = dense(b), od = out.data as Float32Array;
    for (let o = 0; o < a.size; o += b.size) k.mul(b.size, ad.subarray(o), bd, od.subarray(o));
  } else {
    throw new LowbitError('E_SHAPE', `${op}: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not broadcast (b must equal a's shape or its trailing dims)`);
  }
  return out;
}

/** a + b; b may be a's shape or a suffix of it (broadcast over leading dims, e.g. a bias row). */
export function add(a: Tensor, b: Tensor): Tensor { return binary('add', a, b); }
/** a · b elementwise; b may be a's shape or a suffix of it. */
export function mul(a: Tensor, b: Tensor): Tensor { return binary('mul', a, b); }

function unary(op: 'relu' | 'gelu', x: Tensor): Tensor {
  needDtype(op, 'x', x, 'f32');
  const out = Tensor.empty(x.shape, 'f32', placeOf(x));
  currentBackend().kernels[op](x.size, dense(x), out.data as Float32Array);
  return out;
}

/** max(x, 0). */
export function relu(x: Tensor): Tensor { return unary('relu', x); }
/** Exact GELU, 0.5 x (1 + erf(x / √2)) (PyTorch's default `gelu`). */
export function gelu(x: Tensor): Tensor { return unary('gelu', x); }

// ---------------------------------------------------------------------------------------------
// Normalisation, softmax, gather, argmax
// ---------------------------------------------------------------------------------------------

/** LayerNorm over the last dim: (x − mean)/sqrt(var + eps) · gamma + beta, biased var (PyTorch). */
export function layerNorm(x: Tensor, gamma: Tensor | null, beta: Tensor | null, eps = 1e-5): Tensor {
  needDtype('layerNorm', 'x', x, 'f32');
  if (x.ndim < 1) throw new LowbitError('E_SHAPE', 'layerNorm: x must have at least 1 dim');
  const cols = x.shape[x.ndim - 1]!;
  for (const [name, p] of [['gamma', gamma], ['beta', beta]] as const) {
    if (!p) continue;
    needDtype('layerNorm', name, p, 'f32');
    if (p.ndim !== 1 || p.shape[0] !== cols) {
      throw new LowbitError('E_SHAPE', `layerNorm: ${name} ${fmtShape(p.shape)} must be [${cols}] for x ${fmtShape(x.shape)}`);
    }
  }
  const out = Tensor.empty(x.shape, 'f32', placeOf(x));
  currentBackend().kernels.layerNorm(x.size / Math.max(cols, 1), cols, dense(x), gamma ? dense(gamma) : null,
    beta ? dense(beta) : null, eps, out.data as Float32Array);
  return out;
}

export interface SoftmaxOptions {
  /**
   * Causal mask for attention scores [..., T, S]: query row t sees key columns s <= t + causal.
   * With a KV cache of P past tokens and T new ones (S = P + T), use causal = P. Omit for no mask.
   */
  causal?: number;
}

/** Softmax over the last dim (max-subtracted), optionally causal-masked. */
export function softmax(x: Tensor, opts: SoftmaxOptions = {}): Tensor {
  needDtype('softmax', 'x', x, 'f32');
  if (x.ndim < 1) throw new LowbitError('E_SHAPE', 'softmax: x must have at least 1 dim');
  const cols = x.shape[x.ndim - 1]!;
  const k = currentBackend().kernels;
  const out = Tensor.empty(x.shape, 'f32', placeOf(x));
  const xd = dense(x), od = out.data as Float32Array;
  if (opts.causal === undefined) {
    k.softmax(x.size / Math.max(cols, 1), cols, xd, od, -1);
  } else {
    if (!Number.isSafeInteger(opts.causal) || opts.causal < 0) {
      throw new LowbitError('E_ARG', `softmax: causal must be a non-negative integer, got ${opts.causal}`);
    }
    if (x.ndim < 2) throw new LowbitError('E_SHAPE', `softmax: causal needs x[..., T, S], got ${fmtShape(x.shape)}`);
    const rows = x.shape[x.ndim - 2]!, mat = rows * cols;
    for (let o = 0; o < x.size; o += mat) k.softmax(rows, cols, xd.subarray(o), od.subarray(o), opts.causal);
  }
  return out;
}

/** Gathers rows of table[V, D] for integer ids of any shape → [...ids.shape, D]. */
export function embedding(table: Tensor, ids: Tensor | ArrayLike<number>): Tensor {
  needDtype('embedding', 'table', table, 'f32');
  if (table.ndim !== 2) throw new LowbitError('E_SHAPE', `embedding: table must be [V, D], got ${fmtShape(table.shape)}`);
  let idArr: Int32Array, idShape: readonly number[];
  if (ids instanceof Tensor) {
    needDtype('embedding', 'ids', ids, 'i32');
    idArr = (ids.isContiguous ? ids : ids.contiguous()).data as Int32Array;
    idShape = ids.shape;
  } else {
    idArr = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i]!;
      if (!Number.isInteger(v)) throw new LowbitError('E_ARG', `embedding: ids[${i}] = ${v} is not an integer`);
      idArr[i] = v;
    }
    idShape = [ids.length];
  }
  const D = table.shape[1]!, V = table.shape[0]!;
  for (let i = 0; i < idArr.length; i++) {
    if (idArr[i]! < 0 || idArr[i]! >= V) {
      throw new LowbitError('E_RANGE', `embedding: id ${idArr[i]} at index ${i} is outside the table's ${V} rows ${fmtShape(table.shape)}`);
    }
  }
  const out = Tensor.empty([...idShape, D], 'f32', placeOf(table));
  currentBackend().kernels.gatherRows(idArr.length, D, dense(table), idArr, out.data as Float32Array);
  return out;
}

/** Index of the maximum over the last dim → i32 tensor of shape x.shape[:-1]. */
export function argmax(x: Tensor): Tensor<'i32'> {
  needDtype('argmax', 'x', x, 'f32');
  if (x.ndim < 1 || x.shape[x.ndim - 1] === 0) throw new LowbitError('E_SHAPE', `argmax: x ${fmtShape(x.shape)} has an empty last dim`);
  const cols = x.shape[x.ndim - 1]!;
  const out = Tensor.empty(x.shape.slice(0, -1), 'i32') as Tensor<'i32'>;
  currentBackend().kernels.argmax(x.size / cols, cols, dense(x), out.data);
  return out;
}
