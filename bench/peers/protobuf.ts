// A small protobuf writer: just what the ONNX messages in ./onnx.ts need (bench/test only).
//
// Wire format (protobuf encoding spec): each field is a key varint `(field_number << 3) | wire_type`
// followed by its value. Wire types used here:
//   0 VARINT  int32/int64/uint64/bool/enum: base-128 little-endian groups of 7 bits, high bit = more.
//             Negative int32/int64 are sign-extended to 64 bits (always 10 bytes); sint32/sint64 use
//             zigzag ((n << 1) ^ (n >> 63)) instead. ONNX uses no sint fields, zigzag is here for tests.
//   2 LEN     string/bytes/embedded message/packed repeated scalars: varint length, then the bytes.
//   5 I32     fixed32/sfixed32/float: 4 bytes little-endian.
// proto2 `[packed = true]` repeated scalars (e.g. TensorProto.dims is unpacked in proto2, but
// float_data / int32_data / int64_data are declared packed) are one LEN field whose payload is the
// values' encodings back to back; parsers accept either form for repeated scalars.
//
// Integers are taken as JS numbers (exact up to 2^53) or bigints (full 64 bits).

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

const utf8 = new TextEncoder();
const MASK64 = (1n << 64n) - 1n;

/** Appends protobuf fields to a growable byte buffer; `finish()` returns the encoded bytes. */
export class Writer {
  private buf = new Uint8Array(256);
  private len = 0;

  get length(): number {
    return this.len;
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }

  /** Raw bytes, no key. */
  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
    return this;
  }

  /**
   * A varint of a 64-bit two's-complement value: negative numbers are sign-extended (10 bytes),
   * as protobuf does for int32/int64.
   */
  varint(v: number | bigint): this {
    let x: bigint;
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new RangeError(`varint: ${v} is not a safe integer (pass a bigint)`);
      if (v >= 0 && v < 2 ** 31) return this.smallVarint(v);
      x = BigInt(v);
    } else {
      x = v;
    }
    if (x < -(1n << 63n) || x > MASK64) throw new RangeError(`varint: ${x} does not fit in 64 bits`);
    x &= MASK64;
    this.reserve(10);
    while (x > 0x7fn) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
    return this;
  }

  private smallVarint(v: number): this {
    this.reserve(5);
    while (v > 0x7f) {
      this.buf[this.len++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.len++] = v;
    return this;
  }

  /** A zigzag varint (sint32/sint64): 0 → 0, −1 → 1, 1 → 2, −2 → 3, … */
  zigzag(v: number | bigint): this {
    const x = BigInt(v);
    if (x < -(1n << 63n) || x >= 1n << 63n) throw new RangeError(`zigzag: ${x} does not fit in 64 bits`);
    return this.varint(((x << 1n) ^ (x >> 63n)) & MASK64);
  }

  /** A field key. */
  key(field: number, wire: number): this {
    if (!Number.isInteger(field) || field < 1 || field > 2 ** 29 - 1) throw new RangeError(`bad field number ${field}`);
    return this.varint(field * 8 + wire);
  }

  // ---- fields -------------------------------------------------------------------------------

  /** int32/int64/uint64/enum/bool field (wire type 0). */
  int(field: number, v: number | bigint | boolean): this {
    return this.key(field, WIRE_VARINT).varint(typeof v === 'boolean' ? (v ? 1 : 0) : v);
  }

  /** sint32/sint64 field (zigzag, wire type 0). */
  sint(field: number, v: number | bigint): this {
    return this.key(field, WIRE_VARINT).zigzag(v);
  }

  /** float field (wire type 5). */
  float(field: number, v: number): this {
    this.key(field, WIRE_I32);
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, v, true);
    this.len += 4;
    return this;
  }

  /** fixed32 field (wire type 5). */
  fixed32(field: number, v: number): this {
    this.key(field, WIRE_I32);
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setUint32(0, v >>> 0, true);
    this.len += 4;
    return this;
  }

  /** bytes field (wire type 2). */
  bytes(field: number, b: Uint8Array): this {
    return this.key(field, WIRE_LEN).varint(b.length).raw(b);
  }

  /** string field (UTF-8, wire type 2). */
  string(field: number, s: string): this {
    return this.bytes(field, utf8.encode(s));
  }

  /** Embedded message field: `build` writes the message's fields into a fresh writer. */
  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  /** Packed repeated varints (int32/int64/uint64). Nothing is written for an empty list. */
  packedVarints(field: number, values: ArrayLike<number | bigint>): this {
    if (values.length === 0) return this;
    const inner = new Writer();
    for (let i = 0; i < values.length; i++) inner.varint(values[i]!);
    return this.bytes(field, inner.finish());
  }

  /** Packed repeated floats. Nothing is written for an empty list. */
  packedFloats(field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this;
    const f = Float32Array.from(values);
    return this.bytes(field, new Uint8Array(littleEndian(f.buffer)));
  }

  /** The encoded bytes (a copy, exactly `length` long). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** The buffer in little-endian byte order (a no-op on little-endian hosts, which all JS engines are in practice). */
function littleEndian(b: ArrayBufferLike): ArrayBufferLike {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) return b;
  const u = new Uint8Array(b.slice(0));
  for (let i = 0; i < u.length; i += 4) u.subarray(i, i + 4).reverse();
  return u.buffer;
}

/** Convenience: the varint encoding of one value. */
export function encodeVarint(v: number | bigint): Uint8Array {
  return new Writer().varint(v).finish();
}

/** Convenience: the zigzag varint encoding of one value. */
export function encodeZigzag(v: number | bigint): Uint8Array {
  return new Writer().zigzag(v).finish();
}
