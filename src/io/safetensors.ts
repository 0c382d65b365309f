// safetensors reader and writer (spec: huggingface/safetensors README "Format"; writer layout follows the reference Rust `serialize`).
//
// Layout: u64 little-endian N | N bytes of UTF-8 JSON header | byte buffer.
// Header: { "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {string: string} },
// offsets relative to the start of the byte buffer (byte 8 + N of the file).

import { LowbitError, fmtShape } from '../errors.js';
import { asBytes, decodeUtf8, describeJson, isJsonObject, parseJson } from './bytes.js';
import { DTYPE_BYTES, isRawDtype, numelOf, type RawDtype, type RawTensor } from './tensor.js';

/** Dtypes the safetensors spec defines that lowbit does not load (E_DTYPE, not E_FORMAT: the file is valid). */
const SPEC_ONLY_DTYPES = new Set(['U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64']);

/** The reference implementation refuses headers above 100 MB; so do we (no valid file has one). */
export const SAFETENSORS_MAX_HEADER = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: RawDtype;
  shape: number[];
  /** Byte range in the byte buffer (relative to `dataStart`). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** N, the JSON header length. */
  headerLength: number;
  /** Absolute file offset of the byte buffer: 8 + N. */
  dataStart: number;
  /** Entries in header order. */
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
}

export interface ReadOptions {
  /** Used in error messages; defaults to "model.safetensors". */
  fileName?: string;
}

export interface Safetensors {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

function fail(file: string, message: string, details: Record<string, unknown> = {}): never {
  throw new LowbitError('E_FORMAT', `${file}: ${message}`, { file, ...details });
}

/**
 * Parses and validates the header. `buf` must hold at least the first 8 + N bytes; pass `fileSize` when `buf`
 * is only a prefix of the file (e.g. from a range request), otherwise `buf.byteLength` is the file size.
 */
export function readSafetensorsHeader(
  input: Uint8Array | ArrayBuffer,
  opts: ReadOptions & { fileSize?: number } = {},
): SafetensorsHeader {
  const buf = asBytes(input);
  const file = opts.fileName ?? 'model.safetensors';
  const fileSize = opts.fileSize ?? buf.byteLength;
  if (buf.byteLength < 8) fail(file, `file is ${buf.byteLength} bytes, shorter than the 8-byte header length at byte 0`, { offset: 0 });
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(SAFETENSORS_MAX_HEADER)) {
    fail(file, `header length ${n64} at byte 0 exceeds the ${SAFETENSORS_MAX_HEADER}-byte limit`, { offset: 0 });
  }
  const n = Number(n64);
  if (8 + n > fileSize) fail(file, `header length ${n} at byte 0 runs past the end of the ${fileSize}-byte file`, { offset: 0 });
  if (8 + n > buf.byteLength) fail(file, `header needs ${8 + n} bytes, only ${buf.byteLength} given`, { offset: 0 });
  const text = decodeUtf8(buf.subarray(8, 8 + n), file, 8, 'header');
  if (buf[8] !== 0x7b) fail(file, `header at byte 8 does not begin with '{' as the spec requires`, { offset: 8 });
  const header = parseJson(text, file);
  if (!isJsonObject(header)) fail(file, 'header at byte 8 is not a JSON object', { offset: 8 });

  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const name of Object.keys(header)) {
    const info = header[name];
    if (name === '__metadata__') {
      if (!isJsonObject(info)) fail(file, `'__metadata__' is not an object`, { key: name });
      const md: Record<string, string> = Object.create(null) as Record<string, string>;
      for (const k of Object.keys(info)) {
        const v = info[k];
        if (typeof v !== 'string') fail(file, `'__metadata__' value for '${k}' is not a string`, { key: k });
        md[k] = v;
      }
      metadata = md;
      continue;
    }
    if (!isJsonObject(info)) fail(file, `tensor '${name}': header entry is not an object`, { key: name });
    const { dtype, shape, data_offsets: off } = info;
    if (!isRawDtype(dtype)) {
      if (typeof dtype === 'string' && SPEC_ONLY_DTYPES.has(dtype)) {
        throw new LowbitError('E_DTYPE', `${file}: tensor '${name}' has dtype ${dtype}, which lowbit does not load`, {
          file,
          key: name,
          dtype,
        });
      }
      fail(file, `tensor '${name}': unknown dtype ${describeJson(dtype)}`, { key: name });
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail(file, `tensor '${name}': shape ${describeJson(shape)} is not a list of non-negative integers`, { key: name });
    }
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail(file, `tensor '${name}': data_offsets ${describeJson(off)} is not a pair of non-negative integers`, { key: name });
    }
    const [begin, end] = off as [number, number];
    if (begin > end) {
      fail(file, `tensor '${name}': data_offsets begin ${begin} > end ${end} (file byte ${dataStart + begin})`, {
        key: name,
        offset: dataStart + begin,
      });
    }
    if (end > dataSize) {
      fail(file, `tensor '${name}': data_offsets end ${end} (file byte ${dataStart + end}) is past the end of the ${fileSize}-byte file`, {
        key: name,
        offset: dataStart + end,
      });
    }
    const dims = shape as number[];
    const want = numelOf(dims) * DTYPE_BYTES[dtype];
    if (want !== end - begin) {
      fail(file, `tensor '${name}': ${dtype} ${fmtShape(dims)} is ${want} bytes but data_offsets [${begin}, ${end}] span ${end - begin} (file byte ${dataStart + begin})`, {
        key: name,
        offset: dataStart + begin,
      });
    }
    entries.push({ name, dtype, shape: dims.slice(), begin, end });
  }

  // Overlap check over non-empty ranges sorted by start. Holes between tensors are allowed.
  const byStart = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < byStart.length; i++) {
    const prev = byStart[i - 1]!;
    const cur = byStart[i]!;
    if (cur.begin < prev.end) {
      fail(file, `tensors '${prev.name}' [${prev.begin}, ${prev.end}] and '${cur.name}' [${cur.begin}, ${cur.end}] overlap at file byte ${dataStart + cur.begin}`, {
        key: cur.name,
        offset: dataStart + cur.begin,
      });
    }
  }
  return { headerLength: n, dataStart, entries, metadata };
}

/** Reads a whole safetensors file. Tensor bytes are zero-copy views into `buf`. */
export function readSafetensors(input: Uint8Array | ArrayBuffer, opts: ReadOptions = {}): Safetensors {
  const buf = asBytes(input);
  const h = readSafetensorsHeader(buf, { ...opts, fileSize: buf.byteLength });
  const tensors = new Map<string, RawTensor>();
  for (const e of h.entries) {
    tensors.set(e.name, {
      name: e.name,
      dtype: e.dtype,
      shape: e.shape,
      bytes: buf.subarray(h.dataStart + e.begin, h.dataStart + e.end),
    });
  }
  return { tensors, metadata: h.metadata };
}

export interface TensorToWrite {
  name: string;
  dtype: RawDtype;
  shape: readonly number[];
  bytes: Uint8Array;
}

/**
 * Serialises tensors as safetensors. Deterministic: header keys are sorted (`__metadata__` first), and the byte
 * buffer is laid out by element size descending then name, as the reference writer does, so every tensor is
 * aligned to its element size in the file. The header is padded with spaces to a multiple of 8 bytes.
 */
export function writeSafetensors(tensors: Iterable<TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const list: TensorToWrite[] = [];
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new LowbitError('E_ARG', `writeSafetensors: '__metadata__' is reserved and cannot name a tensor`);
    if (seen.has(t.name)) throw new LowbitError('E_KEY', `writeSafetensors: duplicate tensor name '${t.name}'`, { key: t.name });
    seen.add(t.name);
    if (!isRawDtype(t.dtype)) throw new LowbitError('E_DTYPE', `writeSafetensors: tensor '${t.name}' has unknown dtype ${String(t.dtype)}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new LowbitError('E_SHAPE', `writeSafetensors: tensor '${t.name}' has invalid shape ${fmtShape(t.shape)}`);
    }
    const want = numelOf(t.shape) * DTYPE_BYTES[t.dtype];
    if (t.bytes.byteLength !== want) {
      throw new LowbitError('E_SHAPE', `writeSafetensors: tensor '${t.name}' ${t.dtype} ${fmtShape(t.shape)} needs ${want} bytes, got ${t.bytes.byteLength}`, { key: t.name });
    }
    list.push(t);
  }
  const cmpName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  const layout = list.slice().sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype] || cmpName(a.name, b.name));
  const offsets = new Map<string, [number, number]>();
  let pos = 0;
  for (const t of layout) {
    offsets.set(t.name, [pos, pos + t.bytes.byteLength]);
    pos += t.bytes.byteLength;
  }
  const header = Object.create(null) as Record<string, unknown>; // null prototype: a tensor may be named '__proto__'
  if (metadata !== undefined) {
    const md = Object.create(null) as Record<string, string>;
    for (const k of Object.keys(metadata).sort(cmpName)) {
      const v = metadata[k];
      if (typeof v !== 'string') throw new LowbitError('E_ARG', `writeSafetensors: metadata value for '${k}' is not a string`);
      md[k] = v;
    }
    header['__metadata__'] = md;
  }
  for (const t of list.slice().sort((a, b) => cmpName(a.name, b.name))) {
    header[t.name] = { dtype: t.dtype, shape: Array.from(t.shape), data_offsets: offsets.get(t.name) };
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = json.byteLength + ((8 - (json.byteLength % 8)) % 8);
  const out = new Uint8Array(8 + padded + pos);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + padded);
  let at = 8 + padded;
  for (const t of layout) {
    out.set(t.bytes, at);
    at += t.bytes.byteLength;
  }
  return out;
}
