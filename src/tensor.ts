// Tensor: dtype, shape, strides and typed-array data, on the JS heap or resident in WASM memory.
// Views (reshape of contiguous data, transpose, slice) share storage; nothing is copied silently
// except where a method says so.

import { LowbitError, fmtShape } from './errors.js';
import type { Heap } from './wasm/heap.js';
import { f16ToF32, f32ToF16 } from './util/f16.js';

/** Element types. `f16` is storage only (IEEE half bits in a Uint16Array); ops compute in f32. */
export type DType = 'f32' | 'f16' | 'i8' | 'u8' | 'i32';

export interface ArrayOf {
  f32: Float32Array;
  f16: Uint16Array;
  i8: Int8Array;
  u8: Uint8Array;
  i32: Int32Array;
}
export type TypedArray = ArrayOf[DType];

const CTORS = {
  f32: Float32Array, f16: Uint16Array, i8: Int8Array, u8: Uint8Array, i32: Int32Array,
} as const;

export const DTYPES: readonly DType[] = ['f32', 'f16', 'i8', 'u8', 'i32'];

export function bytesPerElement(dtype: DType): number {
  return CTORS[dtype].BYTES_PER_ELEMENT;
}

function dtypeOfArray(a: ArrayBufferView): DType | null {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Uint16Array) return 'f16';
  if (a instanceof Int8Array) return 'i8';
  if (a instanceof Uint8Array) return 'u8';
  if (a instanceof Int32Array) return 'i32';
  return null;
}

// ---------------------------------------------------------------------------------------------
// Storage: where the elements live. WASM storage keeps (ptr, length) and re-creates its view
// whenever linear memory has grown (growth detaches old views).
// ---------------------------------------------------------------------------------------------

interface Storage {
  readonly length: number;
  readonly heap: Heap | null;
  view(): TypedArray;
  dispose(): void;
}

class JsStorage implements Storage {
  readonly heap = null;
  constructor(private readonly arr: TypedArray) {}
  get length(): number { return this.arr.length; }
  view(): TypedArray { return this.arr; }
  dispose(): void {}
}

const finalizer = typeof FinalizationRegistry === 'function'
  ? new FinalizationRegistry<{ heap: Heap; ptr: number }>(({ heap, ptr }) => heap.free(ptr))
  : null;

class WasmStorage implements Storage {
  private cached: TypedArray | null = null;
  private ptr: number;
  private readonly token = {};
  constructor(readonly heap: Heap, private readonly dtype: DType, readonly length: number) {
    this.ptr = heap.alloc(length * bytesPerElement(dtype), `${dtype} tensor of ${length} elements`);
    finalizer?.register(this, { heap, ptr: this.ptr }, this.token);
  }
  view(): TypedArray {
    if (this.ptr < 0) throw new LowbitError('E_ARG', 'tensor was disposed');
    const buf = this.heap.buffer;
    if (!this.cached || this.cached.buffer !== buf) this.cached = new CTORS[this.dtype](buf as ArrayBuffer, this.ptr, this.length) as TypedArray;
    return this.cached;
  }
  dispose(): void {
    if (this.ptr < 0) return;
    finalizer?.unregister(this.token);
    this.heap.free(this.ptr);
    this.ptr = -1;
    this.cached = null;
  }
}

// ---------------------------------------------------------------------------------------------
// Shape helpers
// ---------------------------------------------------------------------------------------------

export function checkShape(shape: readonly number[], what = 'shape'): void {
  if (!Array.isArray(shape)) throw new LowbitError('E_SHAPE', `${what} must be an array of integers`);
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new LowbitError('E_SHAPE', `${what} ${fmtShape(shape)} has a dimension that is not a non-negative integer: ${d}`);
    }
  }
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

function normDim(dim: number, ndim: number, what: string): number {
  if (!Number.isInteger(dim) || dim < -ndim || dim >= ndim) {
    throw new LowbitError('E_ARG', `${what}: dim ${dim} is out of range for a ${ndim}-d tensor`);
  }
  return dim < 0 ? dim + ndim : dim;
}

type Nested = number | Nested[];

export interface TensorOptions {
  /** Allocate in this WASM heap (resident: kernels use it in place, no copies). */
  heap?: Heap | null;
}

// ---------------------------------------------------------------------------------------------
// Tensor
// ---------------------------------------------------------------------------------------------

export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  /** Offset of element [0, 0, ...] in the storage, in elements. */
  readonly offset: number;
  private readonly storage: Storage;
  /** Shape and strides are frozen, so these are computed once (`data` runs on every kernel call of a decode step). */
  private readonly isContig: boolean;
  private readonly count: number;
  /** The last `data` view and the storage view it was cut from (re-cut when the storage view changes). */
  private dataOf: TypedArray | null = null;
  private dataView: TypedArray | null = null;

  private constructor(dtype: D, shape: readonly number[], strides: readonly number[], offset: number, storage: Storage) {
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze([...strides]);
    this.offset = offset;
    this.storage = storage;
    this.count = sizeOf(this.shape);
    const want = contiguousStrides(this.shape);
    this.isContig = this.shape.every((d, i) => d <= 1 || this.strides[i] === want[i]);
  }

  // ---- construction

  /** Wraps a typed array (no copy). The dtype follows the array type; Uint16Array means f16 bits. */
  static fromArray<T extends TypedArray>(data: T, shape?: readonly number[]): Tensor {
    const dtype = ArrayBuffer.isView(data) ? dtypeOfArray(data) : null;
    if (!dtype) throw new LowbitError('E_DTYPE', 'Tensor.fromArray needs a Float32Array, Uint16Array (f16), Int8Array, Uint8Array or Int32Array');
    const sh = shape ?? [data.length];
    checkShape(sh);
    if (sizeOf(sh) !== data.length) {
      throw new LowbitError('E_SHAPE', `Tensor.fromArray: shape ${fmtShape(sh)} needs ${sizeOf(sh)} elements, the array has ${data.length}`);
    }
    return new Tensor(dtype, sh, contiguousStrides(sh), 0, new JsStorage(data));
  }

  /** Builds a tensor from (nested) number arrays, e.g. [[1, 2], [3, 4]]. Ragged input is an E_SHAPE error. */
  static from(values: Nested, dtype: DType = 'f32', opts: TensorOptions = {}): Tensor {
    const shape: number[] = [];
    let v: Nested = values;
    while (Array.isArray(v)) {
      shape.push(v.length);
      v = v[0] as Nested;
      if (v === undefined) break;
    }
    const t = Tensor.empty(shape, dtype, opts);
    const out = t.storage.view();
    let i = 0;
    const walk = (x: Nested, depth: number, path: string): void => {
      if (depth === shape.length) {
        if (typeof x !== 'number') throw new LowbitError('E_SHAPE', `Tensor.from: element at ${path || '[]'} is not a number`);
        out[i++] = dtype === 'f16' ? f32ToF16(x) : x;
        return;
      }
      if (!Array.isArray(x) || x.length !== shape[depth]) {
        throw new LowbitError('E_SHAPE', `Tensor.from: ragged nested array at ${path || 'top level'}: expected length ${shape[depth]}`);
      }
      for (let j = 0; j < x.length; j++) walk(x[j]!, depth + 1, `${path}[${j}]`);
    };
    walk(values, 0, '');
    return t;
  }

  /** Uninitialised (zero-filled) tensor. */
  static empty(shape: readonly number[], dtype: DType = 'f32', opts: TensorOptions = {}): Tensor {
    checkShape(shape);
    if (!(dtype in CTORS)) throw new LowbitError('E_DTYPE', `unknown dtype '${dtype}'`);
    const n = sizeOf(shape);
    const storage: Storage = opts.heap ? new WasmStorage(opts.heap, dtype, n) : new JsStorage(new CTORS[dtype](n));
    if (opts.heap) storage.view().fill(0);
    return new Tensor(dtype, shape, contiguousStrides(shape), 0, storage);
  }

  static zeros(shape: readonly number[], dtype: DType = 'f32', opts: TensorOptions = {}): Tensor {
    return Tensor.empty(shape, dtype, opts);
  }

  // ---- properties

  get ndim(): number { return this.shape.length; }
  get size(): number { return this.count; }
  /** The WASM heap holding this tensor, or null for JS memory. */
  get heap(): Heap | null { return this.storage.heap; }

  get isContiguous(): boolean { return this.isContig; }

  /**
   * The elements as a typed array (a view, not a copy). Only for contiguous tensors: call
   * `.contiguous()` first on a transposed or sliced view. For resident tensors the view is
   * re-created after WASM memory growth, so read `.data` again after any op instead of keeping it.
   */
  get data(): ArrayOf[D] {
    if (!this.isContiguous) {
      throw new LowbitError('E_ARG', `tensor ${fmtShape(this.shape)} with strides ${fmtShape(this.strides)} is a non-contiguous view; call .contiguous()`);
    }
    const v = this.storage.view();
    if (v !== this.dataOf || this.dataView === null) {
      this.dataView = this.offset === 0 && this.count === v.length ? v : v.subarray(this.offset, this.offset + this.count);
      this.dataOf = v;
    }
    return this.dataView as ArrayOf[D];
  }

  /**
   * The whole underlying storage as a typed array (elements of this view start at `offset` and
   * follow `strides`). For kernels that take leading dimensions; prefer `data` elsewhere.
   */
  storageView(): ArrayOf[D] {
    return this.storage.view() as ArrayOf[D];
  }

  // ---- views

  /** Same elements, new shape; one dimension may be -1. A view when contiguous, else a copy. */
  reshape(...shape: number[] | [readonly number[]]): Tensor<D> {
    const sh = (Array.isArray(shape[0]) ? [...shape[0]] : shape) as number[];
    const neg = sh.indexOf(-1);
    if (neg >= 0) {
      const rest = sizeOf(sh.filter((_, i) => i !== neg));
      if (rest === 0 || this.size % rest !== 0) {
        throw new LowbitError('E_SHAPE', `reshape: cannot infer -1 in ${fmtShape(sh)} for ${this.size} elements ${fmtShape(this.shape)}`);
      }
      sh[neg] = this.size / rest;
    }
    checkShape(sh, 'reshape target');
    if (sizeOf(sh) !== this.size) {
      throw new LowbitError('E_SHAPE', `reshape: ${fmtShape(this.shape)} (${this.size} elements) cannot become ${fmtShape(sh)}`);
    }
    const src = this.isContiguous ? this : this.contiguous();
    return new Tensor(this.dtype, sh, contiguousStrides(sh), src.offset, src.storage);
  }

  /** Swaps two dimensions (default: the last two). Always a view. */
  transpose(dim0 = -2, dim1 = -1): Tensor<D> {
    if (this.ndim < 2 && arguments.length === 0) {
      throw new LowbitError('E_SHAPE', `transpose: tensor ${fmtShape(this.shape)} has fewer than 2 dims`);
    }
    const a = normDim(dim0, this.ndim, 'transpose'), b = normDim(dim1, this.ndim, 'transpose');
    const shape = [...this.shape], strides = [...this.strides];
    [shape[a], shape[b]] = [shape[b]!, shape[a]!];
    [strides[a], strides[b]] = [strides[b]!, strides[a]!];
    return new Tensor(this.dtype, shape, strides, this.offset, this.storage);
  }

  /** Elements start..end-1 along `dim` (negative indices count from the end, as in Python). A view. */
  slice(dim: number, start: number, end: number = this.shape[normDim(dim, this.ndim, 'slice')]!): Tensor<D> {
    const d = normDim(dim, this.ndim, 'slice');
    const n = this.shape[d]!;
    if (!Number.isInteger(start) || !Number.isInteger(end)) {
      throw new LowbitError('E_ARG', `slice: start ${start} and end ${end} must be integers`);
    }
    const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
    const e = Math.min(Math.max(end < 0 ? end + n : end, s), n);
    const shape = [...this.shape];
    shape[d] = e - s;
    return new Tensor(this.dtype, shape, this.strides, this.offset + s * this.strides[d]!, this.storage);
  }

  /** A contiguous tensor with the same elements: this one if already contiguous, else a copy. */
  contiguous(opts: TensorOptions = { heap: this.heap }): Tensor<D> {
    if (this.isContiguous && (opts.heap ?? null) === this.heap) return this;
    return this.clone(opts);
  }

  /** Copy (always new storage). */
  clone(opts: TensorOptions = { heap: this.heap }): Tensor<D> {
    const out = Tensor.empty(this.shape, this.dtype, opts) as Tensor<D>;
    const dst = out.storage.view(), src = this.storage.view();
    if (this.isContiguous) {
      (dst as Float32Array).set((src as Float32Array).subarray(this.offset, this.offset + this.size));
      return out;
    }
    let i = 0;
    this.forEachOffset((o) => { dst[i++] = src[o]!; });
    return out;
  }

  /** Copy into a WASM heap so kernels use it in place. */
  toHeap(heap: Heap): Tensor<D> {
    return this.clone({ heap });
  }

  /** Converts to another dtype (f16 ↔ f32 round-to-nearest-even; ints truncate toward zero and saturate). */
  astype<T extends DType>(dtype: T, opts: TensorOptions = { heap: this.heap }): Tensor<T> {
    const out = Tensor.empty(this.shape, dtype, opts) as Tensor<T>;
    const dst = out.storage.view(), src = this.storage.view();
    const from = this.dtype;
    let i = 0;
    this.forEachOffset((o) => {
      const v = from === 'f16' ? f16ToF32(src[o]!) : src[o]!;
      dst[i++] = dtype === 'f16' ? f32ToF16(v) : v;
    });
    return out;
  }

  /** Element at a full index (negative indices allowed). */
  get(...idx: number[]): number {
    if (idx.length !== this.ndim) throw new LowbitError('E_ARG', `get: ${idx.length} indices for a ${this.ndim}-d tensor`);
    let o = this.offset;
    for (let i = 0; i < idx.length; i++) {
      const n = this.shape[i]!;
      let j = idx[i]!;
      if (!Number.isInteger(j) || j < -n || j >= n) throw new LowbitError('E_RANGE', `get: index ${j} out of range for dim ${i} of size ${n}`);
      if (j < 0) j += n;
      o += j * this.strides[i]!;
    }
    const v = this.storage.view()[o]!;
    return this.dtype === 'f16' ? f16ToF32(v) : v;
  }

  /** Nested JS arrays (f16 decoded to numbers). A 0-d tensor gives a number. */
  toArray(): Nested {
    const src = this.storage.view();
    const dec = this.dtype === 'f16' ? f16ToF32 : (v: number) => v;
    const rec = (d: number, o: number): Nested => {
      if (d === this.ndim) return dec(src[o]!);
      const out: Nested[] = new Array(this.shape[d]!);
      for (let i = 0; i < this.shape[d]!; i++) out[i] = rec(d + 1, o + i * this.strides[d]!);
      return out;
    };
    return rec(0, this.offset);
  }

  /** Frees WASM memory now (JS tensors: no-op). Views sharing the storage become unusable. */
  dispose(): void {
    this.storage.dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype}, ${fmtShape(this.shape)})`;
  }

  /** Visits storage offsets in row-major order of this view. */
  private forEachOffset(fn: (o: number) => void): void {
    const nd = this.ndim, size = this.size;
    if (size === 0) return;
    const idx = new Array<number>(nd).fill(0);
    let o = this.offset;
    for (let n = 0; n < size; n++) {
      fn(o);
      for (let d = nd - 1; d >= 0; d--) {
        if (++idx[d]! < this.shape[d]!) { o += this.strides[d]!; break; }
        o -= (this.shape[d]! - 1) * this.strides[d]!;
        idx[d] = 0;
      }
    }
  }
}
