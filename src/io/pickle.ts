// Restricted unpickler for PyTorch state dicts: a pickle VM (Python `pickletools` opcode table, protocols 2-5) that
// knows only the opcodes and globals a torch.save'd state dict uses, builds plain data and never executes anything.

import { LowbitError } from '../errors.js';
import { decodeUtf8 } from './bytes.js';
import { DTYPE_BYTES, type RawDtype } from './tensor.js';

// ---- values the VM can build ----------------------------------------------------------------------

export class PTuple {
  constructor(readonly items: PValue[]) {}
}
export class PDict {
  readonly map = new Map<PKey, PValue>();
  constructor(readonly ordered: boolean) {}
}
/** A reference to an allowed global, e.g. `torch._utils._rebuild_tensor_v2`; only ever compared by name. */
export class PGlobal {
  constructor(readonly qualname: string) {}
}
export class PStorage {
  constructor(
    readonly key: string,
    readonly dtype: RawDtype,
    readonly numel: number,
    readonly bytes: Uint8Array, // (numel * dtypeBytes(dtype))
  ) {}
}
export class PTensor {
  constructor(
    readonly dtype: RawDtype,
    readonly shape: number[],
    readonly bytes: Uint8Array, // (numel(shape) * dtypeBytes(dtype)), row-major contiguous
  ) {}
}
export type PKey = string | number | boolean | null;
export type PValue = PKey | PTuple | PValue[] | PDict | PGlobal | PStorage | PTensor;

// ---- the allowed subset ---------------------------------------------------------------------------

/** Storage classes a persistent id may name, and the dtype of their elements. */
const STORAGE_DTYPES: ReadonlyMap<string, RawDtype> = new Map([
  ['torch.FloatStorage', 'F32'],
  ['torch.HalfStorage', 'F16'],
  ['torch.BFloat16Storage', 'BF16'],
]);

const G_ORDERED_DICT = 'collections.OrderedDict';
const G_REBUILD_TENSOR_V2 = 'torch._utils._rebuild_tensor_v2';
// `_rebuild_parameter(data, requires_grad, backward_hooks)` wraps a tensor as nn.Parameter. State dicts saved with
// `keep_vars=True` or built from `model.named_parameters()` contain it, and such checkpoints are on the Hub: candle
// had to learn to "dig within the _rebuild_parameter calls" (huggingface/candle#1681). We take its tensor argument.
const G_REBUILD_PARAMETER = 'torch._utils._rebuild_parameter';

export const ALLOWED_GLOBALS: ReadonlySet<string> = new Set([
  G_ORDERED_DICT,
  G_REBUILD_TENSOR_V2,
  G_REBUILD_PARAMETER,
  ...STORAGE_DTYPES.keys(),
]);

const OP = {
  MARK: 0x28, // (
  STOP: 0x2e, // .
  BINFLOAT: 0x47, // G
  BININT: 0x4a, // J
  BININT1: 0x4b, // K
  BININT2: 0x4d, // M
  NONE: 0x4e, // N
  BINPERSID: 0x51, // Q
  REDUCE: 0x52, // R
  BINUNICODE: 0x58, // X
  EMPTY_LIST: 0x5d, // ]
  APPEND: 0x61, // a
  BUILD: 0x62, // b
  GLOBAL: 0x63, // c
  APPENDS: 0x65, // e
  BINGET: 0x68, // h
  LONG_BINGET: 0x6a, // j
  BINPUT: 0x71, // q
  LONG_BINPUT: 0x72, // r
  SETITEM: 0x73, // s
  TUPLE: 0x74, // t
  SETITEMS: 0x75, // u
  EMPTY_DICT: 0x7d, // }
  EMPTY_TUPLE: 0x29, // )
  PROTO: 0x80,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94,
  FRAME: 0x95,
} as const;

/** Names of the pickle opcodes outside the subset, so a refusal can say what it refused. */
const OTHER_OPCODES: ReadonlyMap<number, string> = new Map([
  [0x30, 'POP'], [0x31, 'POP_MARK'], [0x32, 'DUP'], [0x46, 'FLOAT'], [0x49, 'INT'], [0x4c, 'LONG'],
  [0x50, 'PERSID'], [0x53, 'STRING'], [0x54, 'BINSTRING'], [0x55, 'SHORT_BINSTRING'], [0x56, 'UNICODE'],
  [0x64, 'DICT'], [0x67, 'GET'], [0x69, 'INST'], [0x6c, 'LIST'], [0x6f, 'OBJ'], [0x70, 'PUT'],
  [0x81, 'NEWOBJ'], [0x82, 'EXT1'], [0x83, 'EXT2'], [0x84, 'EXT4'], [0x8b, 'LONG4'], [0x42, 'BINBYTES'],
  [0x43, 'SHORT_BINBYTES'], [0x8e, 'BINBYTES8'], [0x8f, 'EMPTY_SET'], [0x90, 'ADDITEMS'], [0x91, 'FROZENSET'],
  [0x92, 'NEWOBJ_EX'], [0x96, 'BYTEARRAY8'], [0x97, 'NEXT_BUFFER'], [0x98, 'READONLY_BUFFER'],
]);

const MAX_GLOBAL_LINE = 256;
const MAX_PROTOCOL = 5;

export interface UnpickleOptions {
  /** Used in error messages, e.g. "pytorch_model.bin:archive/data.pkl". */
  fileName: string;
  /** Returns the bytes of storage `key` (exactly `numel` elements of `dtype`). `offset` is the BINPERSID's position. */
  loadStorage(key: string, dtype: RawDtype, numel: number, offset: number): Uint8Array;
  /** Upper bound on the bytes copied to materialise non-contiguous tensors, over the whole pickle. */
  maxMaterializeBytes: number;
}

/**
 * Runs the restricted VM over `pkl` and returns the state dict it builds: name → tensor.
 * E_UNSAFE for any opcode or global outside the subset; E_FORMAT for malformed pickles or a result that is
 * not a flat dict of tensors.
 */
export function unpickleStateDict(pkl: Uint8Array, opts: UnpickleOptions): Map<string, PTensor> {
  const file = opts.fileName;
  const len = pkl.byteLength;
  const dv = new DataView(pkl.buffer, pkl.byteOffset, len);
  const stack: PValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PValue>();
  let budget = opts.maxMaterializeBytes;
  let pos = 0;
  let opAt = 0;

  const bad = (message: string, details: Record<string, unknown> = {}): never => {
    throw new LowbitError('E_FORMAT', `${file}: ${message} (byte ${opAt})`, { file, offset: opAt, ...details });
  };
  const unsafe = (what: string): never => {
    throw new LowbitError('E_UNSAFE', `${file}: ${what} at byte ${opAt} is outside the allowed pickle subset; refusing to load`, {
      file,
      offset: opAt,
    });
  };
  const need = (n: number): number => {
    if (pos + n > len) bad(`truncated: opcode needs ${n} more bytes`);
    const at = pos;
    pos += n;
    return at;
  };
  const floor = (): number => (marks.length > 0 ? marks[marks.length - 1]! : 0);
  const pop = (): PValue => {
    if (stack.length <= floor()) bad('stack underflow');
    return stack.pop()!;
  };
  const top = (): PValue => {
    if (stack.length <= floor()) bad('stack underflow');
    return stack[stack.length - 1]!;
  };
  const popMark = (): PValue[] => {
    if (marks.length === 0) bad('no MARK on the stack');
    return stack.splice(marks.pop()!);
  };
  const readString = (n: number): string => {
    const at = need(n);
    return decodeUtf8(pkl.subarray(at, at + n), file, at, 'string');
  };
  const readLine = (): string => {
    const start = pos;
    const limit = Math.min(len, start + MAX_GLOBAL_LINE);
    let end = start;
    while (end < limit && pkl[end] !== 0x0a) end++;
    if (end >= limit) bad('GLOBAL name is not terminated by a newline within 256 bytes');
    pos = end + 1;
    return decodeUtf8(pkl.subarray(start, end), file, start, 'GLOBAL name');
  };
  const putMemo = (idx: number): void => {
    memo.set(idx, top());
  };
  const getMemo = (idx: number): void => {
    if (!memo.has(idx)) bad(`memo index ${idx} was never stored`);
    stack.push(memo.get(idx)!);
  };
  const pushGlobal = (module: string, name: string): void => {
    const q = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(q)) unsafe(`global '${q}'`);
    stack.push(new PGlobal(q));
  };
  const nonNegInt = (v: PValue, what: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${what} is not a non-negative integer`);
    return v as number;
  };
  const intTuple = (v: PValue, what: string): number[] => {
    if (!(v instanceof PTuple)) bad(`${what} is not a tuple`);
    return (v as PTuple).items.map((x, i) => nonNegInt(x, `${what}[${i}]`));
  };

  const rebuildTensor = (args: PValue[]): PTensor => {
    if (args.length !== 6 && args.length !== 7) bad(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
    const [storage, offV, sizeV, strideV, reqGrad, hooks, meta] = args;
    if (!(storage instanceof PStorage)) return bad('_rebuild_tensor_v2: first argument is not a storage');
    const offset = nonNegInt(offV!, '_rebuild_tensor_v2 storage_offset');
    const size = intTuple(sizeV!, '_rebuild_tensor_v2 size');
    const stride = intTuple(strideV!, '_rebuild_tensor_v2 stride');
    if (size.length !== stride.length) bad(`_rebuild_tensor_v2: size has ${size.length} dims but stride has ${stride.length}`);
    if (typeof reqGrad !== 'boolean') bad('_rebuild_tensor_v2: requires_grad is not a bool');
    if (!(hooks instanceof PDict) || hooks.map.size !== 0) bad('_rebuild_tensor_v2: backward_hooks is not an empty OrderedDict');
    if (meta !== undefined && meta !== null && !(meta instanceof PDict && meta.map.size === 0)) {
      throw new LowbitError('E_UNSUPPORTED', `${file}: tensor metadata (conj/neg bits, ...) at byte ${opAt} is not supported`, {
        file,
        offset: opAt,
      });
    }
    const es = DTYPE_BYTES[storage.dtype];
    let numel = 1;
    let maxIndex = offset;
    let contiguous = true;
    let expect = 1;
    for (let d = size.length - 1; d >= 0; d--) {
      numel *= size[d]!;
      if (size[d]! !== 1 && stride[d]! !== expect) contiguous = false;
      expect *= size[d]!;
      maxIndex += (size[d]! - 1) * stride[d]!;
    }
    if (!Number.isSafeInteger(numel) || !Number.isSafeInteger(maxIndex)) bad('_rebuild_tensor_v2: size/stride overflow');
    if (numel === 0) return new PTensor(storage.dtype, size, storage.bytes.subarray(0, 0));
    if (maxIndex >= storage.numel) {
      bad(`_rebuild_tensor_v2: view reaches element ${maxIndex} of storage '${storage.key}', which has ${storage.numel}`);
    }
    if (contiguous) return new PTensor(storage.dtype, size, storage.bytes.subarray(offset * es, (offset + numel) * es));
    // Non-contiguous (transposed, sliced or expanded) view: copy it out in row-major order.
    const nbytes = numel * es;
    if (nbytes > budget) {
      throw new LowbitError('E_UNSUPPORTED', `${file}: materialising a non-contiguous ${storage.dtype} tensor of ${nbytes} bytes at byte ${opAt} exceeds the ${opts.maxMaterializeBytes}-byte limit`, {
        file,
        offset: opAt,
      });
    }
    budget -= nbytes;
    const out = new Uint8Array(nbytes);
    const src = storage.bytes;
    // Walk the outer dims with an odometer; copy the innermost dim as one run when its stride is 1.
    const nd = size.length;
    const inner = size[nd - 1]!;
    const innerStride = stride[nd - 1]!;
    const idx = new Array<number>(nd).fill(0);
    let srcElem = offset;
    for (let o = 0; o < nbytes; ) {
      if (innerStride === 1) {
        out.set(src.subarray(srcElem * es, (srcElem + inner) * es), o);
        o += inner * es;
      } else {
        for (let j = 0, s0 = srcElem * es; j < inner; j++, s0 += innerStride * es) {
          for (let k = 0; k < es; k++) out[o++] = src[s0 + k]!;
        }
      }
      for (let d = nd - 2; d >= 0; d--) {
        idx[d]!++;
        srcElem += stride[d]!;
        if (idx[d]! < size[d]!) break;
        srcElem -= size[d]! * stride[d]!;
        idx[d] = 0;
      }
    }
    return new PTensor(storage.dtype, size, out);
  };

  const reduce = (fn: PValue, argsV: PValue): PValue => {
    if (!(fn instanceof PGlobal)) return bad('REDUCE callable is not a global');
    if (!(argsV instanceof PTuple)) return bad('REDUCE arguments are not a tuple');
    const args = argsV.items;
    switch (fn.qualname) {
      case G_ORDERED_DICT:
        if (args.length !== 0) bad('OrderedDict is only rebuilt from ()');
        return new PDict(true);
      case G_REBUILD_TENSOR_V2:
        return rebuildTensor(args);
      case G_REBUILD_PARAMETER:
        if (args.length !== 3 || !(args[0] instanceof PTensor)) bad('_rebuild_parameter takes (tensor, requires_grad, backward_hooks)');
        if (!(args[2] instanceof PDict) || args[2].map.size !== 0) bad('_rebuild_parameter: backward_hooks is not an empty OrderedDict');
        return args[0]!;
      default:
        return bad(`global '${fn.qualname}' is not callable`);
    }
  };

  const persistentLoad = (pid: PValue): PStorage => {
    if (!(pid instanceof PTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage') {
      return bad("persistent id is not ('storage', storage_type, key, location, numel)");
    }
    const [, type, key, location, numelV] = pid.items;
    if (!(type instanceof PGlobal)) return bad('persistent id storage_type is not a global');
    const dtype = STORAGE_DTYPES.get(type.qualname);
    if (dtype === undefined) return bad(`'${type.qualname}' is not a storage type`);
    if (typeof key !== 'string') return bad('persistent id key is not a string');
    if (typeof location !== 'string') return bad('persistent id location is not a string');
    const numel = nonNegInt(numelV!, 'persistent id numel');
    return new PStorage(key, dtype, numel, opts.loadStorage(key, dtype, numel, opAt));
  };

  const setItem = (d: PValue, k: PValue, v: PValue): void => {
    if (!(d instanceof PDict)) bad('SETITEM(S) target is not a dict');
    if (k !== null && typeof k === 'object') bad('dict key is not a string, number or bool');
    (d as PDict).map.set(k as PKey, v);
  };

  for (;;) {
    opAt = pos;
    if (pos >= len) bad('pickle ends without STOP');
    const op = pkl[pos++]!;
    switch (op) {
      case OP.PROTO: {
        const p = pkl[need(1)]!;
        if (p > MAX_PROTOCOL) {
          throw new LowbitError('E_VERSION', `${file}: pickle protocol ${p} at byte ${opAt} is newer than ${MAX_PROTOCOL}`, { file, offset: opAt });
        }
        break;
      }
      case OP.FRAME:
        need(8); // frames only group opcodes for buffered reading; we already have every byte
        break;
      case OP.EMPTY_DICT:
        stack.push(new PDict(false));
        break;
      case OP.EMPTY_LIST:
        stack.push([]);
        break;
      case OP.EMPTY_TUPLE:
        stack.push(new PTuple([]));
        break;
      case OP.MARK:
        marks.push(stack.length);
        break;
      case OP.BINUNICODE:
        stack.push(readString(dv.getUint32(need(4), true)));
        break;
      case OP.SHORT_BINUNICODE:
        stack.push(readString(pkl[need(1)]!));
        break;
      case OP.BINUNICODE8: {
        const n = dv.getBigUint64(need(8), true);
        if (n > BigInt(len - pos)) bad(`string length ${n} runs past the end of the pickle`);
        stack.push(readString(Number(n)));
        break;
      }
      case OP.BININT:
        stack.push(dv.getInt32(need(4), true));
        break;
      case OP.BININT1:
        stack.push(pkl[need(1)]!);
        break;
      case OP.BININT2:
        stack.push(dv.getUint16(need(2), true));
        break;
      case OP.LONG1: {
        const n = pkl[need(1)]!;
        const at = need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(pkl[at + i]!);
        if (n > 0 && (pkl[at + n - 1]! & 0x80) !== 0) v -= 1n << BigInt(8 * n);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) bad('LONG1 value does not fit a safe integer');
        stack.push(Number(v));
        break;
      }
      case OP.BINFLOAT:
        stack.push(dv.getFloat64(need(8), false));
        break;
      case OP.NONE:
        stack.push(null);
        break;
      case OP.NEWTRUE:
        stack.push(true);
        break;
      case OP.NEWFALSE:
        stack.push(false);
        break;
      case OP.TUPLE:
        stack.push(new PTuple(popMark()));
        break;
      case OP.TUPLE1: {
        const a = pop();
        stack.push(new PTuple([a]));
        break;
      }
      case OP.TUPLE2: {
        const b = pop();
        const a = pop();
        stack.push(new PTuple([a, b]));
        break;
      }
      case OP.TUPLE3: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(new PTuple([a, b, c]));
        break;
      }
      case OP.BINPUT:
        putMemo(pkl[need(1)]!);
        break;
      case OP.LONG_BINPUT:
        putMemo(dv.getUint32(need(4), true));
        break;
      case OP.MEMOIZE:
        putMemo(memo.size);
        break;
      case OP.BINGET:
        getMemo(pkl[need(1)]!);
        break;
      case OP.LONG_BINGET:
        getMemo(dv.getUint32(need(4), true));
        break;
      case OP.SETITEM: {
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case OP.SETITEMS: {
        const items = popMark();
        if (items.length % 2 !== 0) bad('SETITEMS has an odd number of items');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i]!, items[i + 1]!);
        break;
      }
      case OP.APPEND: {
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) bad('APPEND target is not a list');
        (l as PValue[]).push(v);
        break;
      }
      case OP.APPENDS: {
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) bad('APPENDS target is not a list');
        for (const v of items) (l as PValue[]).push(v);
        break;
      }
      case OP.GLOBAL: {
        const module = readLine();
        const name = readLine();
        pushGlobal(module, name);
        break;
      }
      case OP.STACK_GLOBAL: {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') bad('STACK_GLOBAL operands are not strings');
        pushGlobal(module as string, name as string);
        break;
      }
      case OP.REDUCE: {
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, args));
        break;
      }
      case OP.BINPERSID:
        stack.push(persistentLoad(pop()));
        break;
      case OP.BUILD: {
        const state = pop();
        const obj = top();
        // OrderedDict state is its instance __dict__ (torch stores `_metadata` there): kept out of the result.
        const dictState = obj instanceof PDict && (state === null || state instanceof PDict);
        const emptyState = state === null || (state instanceof PDict && state.map.size === 0);
        if (!dictState && !(obj instanceof PTensor && emptyState)) unsafe('BUILD on something other than an OrderedDict or with non-empty state');
        break;
      }
      case OP.STOP:
        return toStateDict(pop(), bad);
      default: {
        const name = OTHER_OPCODES.get(op);
        if (name !== undefined) unsafe(`opcode ${name} (0x${op.toString(16).padStart(2, '0')})`);
        bad(`byte 0x${op.toString(16).padStart(2, '0')} is not a pickle opcode`);
      }
    }
  }
}

function toStateDict(v: PValue, bad: (m: string) => never): Map<string, PTensor> {
  if (!(v instanceof PDict)) return bad('the pickle is not a state dict: its value is not a dict');
  const out = new Map<string, PTensor>();
  for (const [k, t] of v.map) {
    if (typeof k !== 'string') bad(`the pickle is not a state dict: key ${String(k)} is not a string`);
    if (!(t instanceof PTensor)) {
      bad(`the pickle is not a flat state dict: '${String(k)}' is not a tensor (nested checkpoints such as {'state_dict': ...} must be unwrapped in Python)`);
    }
    out.set(k as string, t as PTensor);
  }
  return out;
}
