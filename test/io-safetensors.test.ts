// Tests for src/io: dtype conversion, safetensors read/write/validation, sharded checkpoints, and a mutation fuzz.

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LowbitError } from '../src/errors.js';
import {
  encodeFloat32,
  f16BitsToF32Bits,
  f32ToBf16Bits,
  f32ToF16Bits,
  loadShardedSafetensors,
  parseJson,
  parseShardIndex,
  readCheckpoint,
  readSafetensors,
  readSafetensorsHeader,
  toFloat32,
  writeSafetensors,
  DTYPE_BYTES,
  type RawDtype,
  type RawTensor,
} from '../src/io/index.js';
import { lowbitError, FIXTURE, fixtureBytes } from './helpers.js';



async function lowbitErrorAsync(p: Promise<unknown>): Promise<LowbitError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(LowbitError);
    return e as LowbitError;
  }
  throw new Error('expected a LowbitError, nothing was thrown');
}

/** A safetensors file from a literal header object and a byte buffer. */
function rawFile(header: unknown, data: Uint8Array | number = 0, headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

const f32Bits = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0]!;

// ---- dtype conversion --------------------------------------------------------------------------------

describe('toFloat32', () => {
  it('converts every float16 bit pattern exactly (normals, subnormals, ±0, ±inf, NaN payloads)', () => {
    const h = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) h[i] = i;
    const out = toFloat32({ name: 'h', dtype: 'F16', shape: [65536], bytes: new Uint8Array(h.buffer) });
    const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
    const wrong: number[] = [];
    for (let i = 0; i < 65536; i++) {
      const sign = i & 0x8000 ? -1 : 1;
      const exp = (i >> 10) & 0x1f;
      const mant = i & 0x3ff;
      if (exp === 31) {
        // inf or NaN: the f32 keeps the sign and the payload shifted into the top mantissa bits.
        if (bits[i] !== (((i & 0x8000) << 16) | 0x7f800000 | (mant << 13)) >>> 0) wrong.push(i);
        continue;
      }
      const want = exp === 0 ? sign * mant * 2 ** -24 : sign * (1 + mant / 1024) * 2 ** (exp - 15);
      if (!Object.is(out[i], want)) wrong.push(i);
    }
    expect(wrong).toEqual([]);
  });

  it('encodes float32 to float16 with round-half-to-even and inverts the decoder on every non-NaN pattern', () => {
    const wrong: number[] = [];
    const u32 = new Uint32Array(1);
    const f32 = new Float32Array(u32.buffer);
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue;
      u32[0] = f16BitsToF32Bits(h);
      if (f32ToF16Bits(f32[0]!) !== h) wrong.push(h);
    }
    expect(wrong).toEqual([]);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even (1.0)
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (1 + 2^-9)
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds to inf
    expect(f32ToF16Bits(2 ** -25)).toBe(0); // half the smallest subnormal → 0 (even)
    expect(f32ToF16Bits(3 * 2 ** -26)).toBe(1);
    expect(f32ToF16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16Bits(NaN) & 0x3ff).not.toBe(0);
  });

  it('decodes bfloat16 as the top 16 bits of float32 and encodes with round-half-to-even', () => {
    const vals = [0, -0, 1, -2.5, 3.140625, Infinity, -Infinity, 1e-40];
    const bytes = new Uint8Array(2 * vals.length + 1).subarray(1); // odd byte offset: unaligned path
    vals.forEach((v, i) => {
      const b = f32Bits(v) >>> 16;
      bytes[2 * i] = b & 0xff;
      bytes[2 * i + 1] = b >>> 8;
    });
    const out = toFloat32({ name: 'b', dtype: 'BF16', shape: [vals.length], bytes });
    vals.forEach((v, i) => expect(f32Bits(out[i]!)).toBe((f32Bits(v) & 0xffff0000) >>> 0));
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    const nan = f32ToBf16Bits(NaN);
    expect(nan & 0x7f80).toBe(0x7f80);
    expect(nan & 0x7f).not.toBe(0);
  });

  it('returns a zero-copy view for aligned F32 and a correct copy for unaligned F32, F16 and F64', () => {
    const vals = new Float32Array([1.5, -2, 3.25, 1e30]);
    const backing = new Uint8Array(4 + 16 + 3);
    backing.set(new Uint8Array(vals.buffer), 4);
    const aligned = toFloat32({ name: 'a', dtype: 'F32', shape: [4], bytes: backing.subarray(4, 20) });
    expect(aligned.buffer).toBe(backing.buffer);
    expect(Array.from(aligned)).toEqual(Array.from(vals));
    backing.copyWithin(3, 4, 20);
    const unaligned = toFloat32({ name: 'u', dtype: 'F32', shape: [2, 2], bytes: backing.subarray(3, 19) });
    expect(unaligned.buffer).not.toBe(backing.buffer);
    expect(Array.from(unaligned)).toEqual(Array.from(vals));

    const f64 = new Float64Array([Math.PI, -1e-300, 7]);
    const u8 = new Uint8Array(24 + 1);
    u8.set(new Uint8Array(f64.buffer), 1);
    const d = toFloat32({ name: 'd', dtype: 'F64', shape: [3], bytes: u8.subarray(1) });
    expect(Array.from(d)).toEqual([Math.fround(Math.PI), -0, 7]);

    const f16 = encodeFloat32(new Float32Array([0.5, -3, 65504]), 'F16');
    const u16 = new Uint8Array(7);
    u16.set(f16, 1);
    expect(Array.from(toFloat32({ name: 'h', dtype: 'F16', shape: [3], bytes: u16.subarray(1) }))).toEqual([0.5, -3, 65504]);
  });

  it('rejects integer dtypes with E_DTYPE and byte counts that do not match the shape with E_SHAPE', () => {
    expect(lowbitError(() => toFloat32({ name: 'q', dtype: 'I8', shape: [2], bytes: new Uint8Array(2) })).code).toBe('E_DTYPE');
    const e = lowbitError(() => toFloat32({ name: 'q', dtype: 'F32', shape: [3], bytes: new Uint8Array(8) }));
    expect(e.code).toBe('E_SHAPE');
    expect(e.message).toContain("'q'");
  });
});

// ---- safetensors ---------------------------------------------------------------------------------

describe('safetensors', () => {
  it('reads the fixture as zero-copy views with its metadata', () => {
    const buf = fixtureBytes('model.safetensors');
    const { tensors, metadata } = readSafetensors(buf, { fileName: 'model.safetensors' });
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.size).toBe(36);
    const emb = tensors.get('model.decoder.embed_tokens.weight')!;
    expect(emb.dtype).toBe('F32');
    expect(emb.shape).toEqual([512, 64]);
    expect(emb.bytes.buffer).toBe(buf.buffer);
    for (const t of tensors.values()) expect(t.name.startsWith('model.decoder.')).toBe(true);
    expect(readCheckpoint(buf).format).toBe('safetensors');
  });

  it('writes the fixture back byte for byte as the reference (Rust) writer did', () => {
    const buf = fixtureBytes('model.safetensors');
    const { tensors, metadata } = readSafetensors(buf);
    const shuffled = [...tensors.values()].reverse();
    expect(Buffer.compare(Buffer.from(writeSafetensors(shuffled, metadata)), Buffer.from(buf))).toBe(0);
  });

  const dtypes = Object.keys(DTYPE_BYTES) as RawDtype[];
  const tensorArb = fc
    .record({
      dtype: fc.constantFrom(...dtypes),
      shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
      seed: fc.integer(),
    })
    .map(({ dtype, shape, seed }) => {
      const n = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
      const bytes = new Uint8Array(n);
      for (let i = 0; i < n; i++) bytes[i] = (seed * 31 + i * 17) & 0xff;
      return { dtype, shape, bytes };
    });

  it('round-trips random tensors and metadata, deterministically, aligned, header padded with spaces', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), tensorArb), { selector: ([n]) => n, maxLength: 6 }),
        fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })), { nil: undefined }),
        (entries, md) => {
          const list = entries.filter(([n]) => n !== '__metadata__').map(([name, t]) => ({ name, ...t }));
          const file = writeSafetensors(list, md);
          expect(Buffer.compare(Buffer.from(file), Buffer.from(writeSafetensors(list.slice().reverse(), md)))).toBe(0);
          const n = Number(new DataView(file.buffer).getBigUint64(0, true));
          expect(n % 8).toBe(0);
          const text = new TextDecoder().decode(file.subarray(8, 8 + n));
          expect(text.trimEnd().length + (text.length - text.trimEnd().length)).toBe(n);
          expect(/^\{.*\} *$/s.test(text)).toBe(true);
          const back = readSafetensors(file);
          expect(back.metadata).toEqual(md ?? {});
          expect(back.tensors.size).toBe(list.length);
          for (const t of list) {
            const r = back.tensors.get(t.name)!;
            expect(r.dtype).toBe(t.dtype);
            expect(r.shape).toEqual(t.shape);
            expect(Buffer.compare(Buffer.from(r.bytes), Buffer.from(t.bytes))).toBe(0);
            if (r.bytes.length > 0) expect(r.bytes.byteOffset % DTYPE_BYTES[r.dtype]).toBe(0);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps a tensor named __proto__ as an ordinary key', () => {
    const file = writeSafetensors([{ name: '__proto__', dtype: 'U8', shape: [1], bytes: new Uint8Array([7]) }], { __proto__: 'x' } as Record<string, string>);
    const back = readSafetensors(file);
    expect(back.tensors.get('__proto__')!.bytes[0]).toBe(7);
  });

  it('rejects bad writer input', () => {
    const t = { name: 'a', dtype: 'F32' as const, shape: [2], bytes: new Uint8Array(8) };
    expect(lowbitError(() => writeSafetensors([t, t])).code).toBe('E_KEY');
    expect(lowbitError(() => writeSafetensors([{ ...t, bytes: new Uint8Array(4) }])).code).toBe('E_SHAPE');
    expect(lowbitError(() => writeSafetensors([{ ...t, name: '__metadata__' }])).code).toBe('E_ARG');
  });

  describe('validation: every malformed header is E_FORMAT naming the file, key and offset', () => {
    const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
    const cases: { what: string; file: () => Uint8Array; mentions: string[] }[] = [
      { what: 'file shorter than 8 bytes', file: () => new Uint8Array(5), mentions: ['byte 0'] },
      {
        what: 'header length larger than the file',
        file: () => {
          const f = rawFile({ a: ok }, 8);
          new DataView(f.buffer).setBigUint64(0, BigInt(f.length), true);
          return f;
        },
        mentions: ['byte 0', 'past the end'],
      },
      {
        what: 'header length above the 100 MB limit',
        file: () => {
          const f = rawFile({ a: ok }, 8);
          new DataView(f.buffer).setBigUint64(0, 2n ** 63n, true);
          return f;
        },
        mentions: ['byte 0', 'limit'],
      },
      { what: 'header not JSON', file: () => rawFile(null, 8, '{"a": {"dtype": "F32",'), mentions: ['JSON'] },
      { what: 'header not UTF-8', file: () => rawFile(null, 0, '{"ab": 1}').map((b, i) => (i === 10 ? 0xff : b)), mentions: ['UTF-8', 'byte 8'] },
      { what: 'header a JSON array', file: () => rawFile([1, 2]), mentions: ['byte 8', "'{'"] },
      { what: 'header a JSON string', file: () => rawFile(null, 0, ' "{}"'), mentions: ['byte 8', "'{'"] },
      { what: 'trailing garbage after the header object', file: () => rawFile(null, 0, '{} x'), mentions: ['JSON'] },
      { what: 'entry not an object', file: () => rawFile({ a: 3 }), mentions: ["'a'"] },
      { what: 'unknown dtype', file: () => rawFile({ a: { ...ok, dtype: 'F33' } }, 8), mentions: ["'a'", 'F33'] },
      { what: 'negative dim', file: () => rawFile({ a: { ...ok, shape: [-2] } }, 8), mentions: ["'a'", 'shape'] },
      { what: 'fractional dim', file: () => rawFile({ a: { ...ok, shape: [2.5] } }, 8), mentions: ["'a'", 'shape'] },
      { what: 'shape not a list', file: () => rawFile({ a: { ...ok, shape: '2' } }, 8), mentions: ["'a'", 'shape'] },
      { what: 'data_offsets not a pair', file: () => rawFile({ a: { ...ok, data_offsets: [0] } }, 8), mentions: ["'a'", 'data_offsets'] },
      { what: 'data_offsets past the end', file: () => rawFile({ a: { ...ok, data_offsets: [4, 12] } }, 8), mentions: ["'a'", 'past the end', 'file byte'] },
      { what: 'begin > end', file: () => rawFile({ a: { ...ok, shape: [0], data_offsets: [8, 0] } }, 8), mentions: ["'a'", 'begin 8 > end 0', 'file byte'] },
      { what: 'byte count ≠ end − begin', file: () => rawFile({ a: { ...ok, shape: [3] } }, 16), mentions: ["'a'", '12 bytes', 'file byte'] },
      {
        what: 'overlapping tensors',
        file: () => rawFile({ a: ok, b: { dtype: 'U8', shape: [4], data_offsets: [6, 10] } }, 16),
        mentions: ["'a'", "'b'", 'overlap', 'file byte'],
      },
      { what: 'metadata not an object', file: () => rawFile({ __metadata__: [1] }), mentions: ['__metadata__'] },
      { what: 'metadata value not a string', file: () => rawFile({ __metadata__: { v: 1 } }), mentions: ["'v'"] },
    ];
    for (const c of cases) {
      it(c.what, () => {
        const e = lowbitError(() => readSafetensors(c.file(), { fileName: 'bad.safetensors' }));
        expect(e.code).toBe('E_FORMAT');
        expect(e.message).toContain('bad.safetensors');
        for (const m of c.mentions) expect(e.message).toContain(m);
      });
    }

    it('a dtype the spec defines but lowbit does not load is E_DTYPE', () => {
      const e = lowbitError(() => readSafetensors(rawFile({ a: { ...ok, dtype: 'U32' } }, 8), { fileName: 'u.safetensors' }));
      expect(e.code).toBe('E_DTYPE');
      expect(e.message).toContain("'a'");
    });

    it('accepts holes, trailing bytes, zero-size tensors and scalars', () => {
      const file = rawFile(
        {
          a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] },
          empty: { dtype: 'F32', shape: [0, 3], data_offsets: [1, 1] },
          s: { dtype: 'F32', shape: [], data_offsets: [8, 12] },
        },
        Uint8Array.from({ length: 20 }, (_, i) => i),
      );
      const { tensors } = readSafetensors(file);
      expect(Array.from(tensors.get('a')!.bytes)).toEqual([0, 1]);
      expect(tensors.get('empty')!.bytes.length).toBe(0);
      expect(Array.from(tensors.get('s')!.bytes)).toEqual([8, 9, 10, 11]);
      const h = readSafetensorsHeader(file);
      expect(h.dataStart).toBe(8 + h.headerLength);
    });

    it('reads a header from a prefix of the file when told the full size', () => {
      const full = writeSafetensors([{ name: 'w', dtype: 'F32', shape: [4], bytes: new Uint8Array(16) }]);
      const n = Number(new DataView(full.buffer).getBigUint64(0, true));
      const h = readSafetensorsHeader(full.subarray(0, 8 + n), { fileSize: full.length });
      expect(h.entries).toEqual([{ name: 'w', dtype: 'F32', shape: [4], begin: 0, end: 16 }]);
    });
  });
});

// ---- JSON and shards -------------------------------------------------------------------------------

describe('JSON files and sharded checkpoints', () => {
  it('turns JSON syntax errors and invalid UTF-8 into E_FORMAT naming the file', () => {
    expect(parseJson('\ufeff{"a": 1}', 'config.json')).toEqual({ a: 1 });
    const e = lowbitError(() => parseJson('{"a": ', 'config.json'));
    expect(e.code).toBe('E_FORMAT');
    expect(e.message).toContain('config.json');
    expect(lowbitError(() => parseJson(new Uint8Array([0x7b, 0xff, 0x7d]), 'x.json')).code).toBe('E_FORMAT');
  });

  const buf = fixtureBytes('model.safetensors');
  const whole = readSafetensors(buf).tensors;
  const names = [...whole.keys()].sort();
  const half = names.filter((_, i) => i % 2 === 0);
  const shards = new Map([
    ['model-00001-of-00002.safetensors', writeSafetensors(half.map((n) => whole.get(n)!), { format: 'pt' })],
    ['model-00002-of-00002.safetensors', writeSafetensors(names.filter((n) => !half.includes(n)).map((n) => whole.get(n)!), { format: 'pt' })],
  ]);
  const weightMap = Object.fromEntries(names.map((n) => [n, half.includes(n) ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors']));
  const indexText = JSON.stringify({ metadata: { total_size: buf.length }, weight_map: weightMap });

  it('loads a two-shard split of the fixture, each shard fetched once, bit-identical tensors', async () => {
    const fetched: string[] = [];
    const progress: number[] = [];
    const { tensors, shardMetadata } = await loadShardedSafetensors(
      indexText,
      async (f) => {
        fetched.push(f);
        return shards.get(f)!;
      },
      (_f, done) => progress.push(done),
    );
    expect(fetched).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(progress).toEqual([1, 2]);
    expect(shardMetadata.get('model-00002-of-00002.safetensors')).toEqual({ format: 'pt' });
    expect([...tensors.keys()].sort()).toEqual(names);
    for (const n of names) {
      const a = tensors.get(n)!;
      const b = whole.get(n)!;
      expect(a.shape).toEqual(b.shape);
      expect(Buffer.compare(Buffer.from(a.bytes), Buffer.from(b.bytes))).toBe(0);
    }
    expect(parseShardIndex(indexText).metadata).toEqual({ total_size: buf.length });
  });

  it('is E_KEY when a shard lacks a key the weight map assigns to it', async () => {
    const wrong = { ...weightMap, [half[0]!]: 'model-00002-of-00002.safetensors' };
    const e = await lowbitErrorAsync(loadShardedSafetensors({ weight_map: wrong }, async (f) => shards.get(f)!));
    expect(e.code).toBe('E_KEY');
    expect(e.message).toContain(half[0]!);
    expect(e.message).toContain('model-00002-of-00002.safetensors');
  });

  it('is E_FORMAT for a broken index, a missing weight_map, or a shard name that leaves the folder', () => {
    expect(lowbitError(() => parseShardIndex('{"weight_map": ', { fileName: 'model.safetensors.index.json' })).message).toContain('model.safetensors.index.json');
    expect(lowbitError(() => parseShardIndex('{"metadata": {}}')).code).toBe('E_FORMAT');
    expect(lowbitError(() => parseShardIndex({ weight_map: { a: '../secret.safetensors' } })).code).toBe('E_FORMAT');
    expect(lowbitError(() => parseShardIndex({ weight_map: { a: 7 } })).code).toBe('E_FORMAT');
  });
});

// ---- fuzz ------------------------------------------------------------------------------------------

type Mutation =
  | { kind: 'flip'; pos: number; bit: number }
  | { kind: 'set'; pos: number; value: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'insert'; pos: number; bytes: Uint8Array }
  | { kind: 'delete'; pos: number; n: number }
  | { kind: 'headerLength'; value: bigint }
  | { kind: 'text'; pos: number; text: string };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), pos: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), pos: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({
    kind: fc.constant('headerLength' as const),
    value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 400n })),
  }),
  fc.record({
    kind: fc.constant('text' as const),
    pos: fc.nat(),
    text: fc.constantFrom('-1', '1e400', '[]', '{}', 'null', '"F64"', '"BOOL"', '99999999999999999999', ',', '"', '\\u0000', '1.5', '"data_offsets"'),
  }),
);

function mutate(src: Uint8Array, muts: Mutation[]): Uint8Array {
  let b = src.slice();
  for (const m of muts) {
    const at = (p: number): number => (b.length === 0 ? 0 : p % b.length);
    switch (m.kind) {
      case 'flip':
        if (b.length > 0) b[at(m.pos)]! ^= 1 << m.bit;
        break;
      case 'set':
        if (b.length > 0) b[at(m.pos)] = m.value;
        break;
      case 'truncate':
        b = b.slice(0, m.keep % (b.length + 1));
        break;
      case 'insert': {
        const p = at(m.pos);
        const n = new Uint8Array(b.length + m.bytes.length);
        n.set(b.subarray(0, p));
        n.set(m.bytes, p);
        n.set(b.subarray(p), p + m.bytes.length);
        b = n;
        break;
      }
      case 'delete': {
        const p = at(m.pos);
        b = Uint8Array.from([...b.subarray(0, p), ...b.subarray(p + m.n)]);
        break;
      }
      case 'headerLength':
        if (b.length >= 8) new DataView(b.buffer, b.byteOffset).setBigUint64(0, m.value, true);
        break;
      case 'text': {
        const t = new TextEncoder().encode(m.text);
        const p = at(m.pos);
        b.set(t.subarray(0, Math.max(0, b.length - p)), p);
        break;
      }
    }
  }
  return b;
}

describe('fuzz: random header JSON loads or fails with LowbitError', () => {
  it('survives a header nesting arrays 200 000 deep', () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    const e = lowbitError(() => readSafetensors(rawFile(null, 0, `{"a":{"dtype":"F32","shape":${deep},"data_offsets":[0,0]}}`)));
    expect(e.code).toBe('E_FORMAT');
    expect(e.message).toContain("'a'");
    expect(lowbitError(() => parseShardIndex(`{"weight_map":{"a":${deep}}}`)).code).toBe('E_FORMAT');
  });

  it('runs 1000 random headers built from plausible and arbitrary JSON values', () => {
    const dtypeArb = fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'U32', 'f32', ''), fc.jsonValue({ maxDepth: 2 }));
    const dimsArb = fc.oneof(
      fc.array(fc.oneof(fc.integer({ min: -2, max: 6 }), fc.constantFrom(1.5, 2 ** 53, 2 ** 60, -0)), { maxLength: 3 }),
      fc.jsonValue({ maxDepth: 2 }),
    );
    const offsetsArb = fc.oneof(fc.tuple(fc.integer({ min: -4, max: 80 }), fc.integer({ min: -4, max: 80 })), fc.jsonValue({ maxDepth: 2 }));
    const entryArb = fc.oneof(fc.record({ dtype: dtypeArb, shape: dimsArb, data_offsets: offsetsArb }), fc.jsonValue({ maxDepth: 2 }));
    const headerArb = fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constant('__metadata__')), entryArb, { maxKeys: 5 });
    let loaded = 0;
    fc.assert(
      fc.property(headerArb, fc.integer({ min: 0, max: 96 }), (header, dataLen) => {
        try {
          readSafetensors(rawFile(header, dataLen));
          loaded++;
        } catch (e) {
          if (!(e instanceof LowbitError)) throw e;
        }
      }),
      { numRuns: 1000 },
    );
    expect(loaded).toBeGreaterThan(0);
  });
});

describe('fuzz: mutated safetensors files load or fail with LowbitError, never another exception', () => {
  const base = writeSafetensors(
    [
      { name: 'w', dtype: 'F32', shape: [3, 2], bytes: new Uint8Array(24).map((_, i) => i) },
      { name: 'h', dtype: 'F16', shape: [5], bytes: new Uint8Array(10).map((_, i) => 60 + i) },
      { name: 'b', dtype: 'BF16', shape: [2, 1], bytes: new Uint8Array(4).fill(0x3f) },
      { name: 'd', dtype: 'F64', shape: [1], bytes: new Uint8Array(8).fill(0x40) },
      { name: 'q', dtype: 'I8', shape: [3], bytes: new Uint8Array([1, 2, 3]) },
    ],
    { lowbit: '0.1.0' },
  );
  let loaded = 0;
  let rejected = 0;
  it('runs 2000 mutation sequences', () => {
    fc.assert(
      fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (muts) => {
        const file = mutate(base, muts);
        let result: ReturnType<typeof readSafetensors>;
        try {
          result = readSafetensors(file, { fileName: 'fuzz.safetensors' });
        } catch (e) {
          if (!(e instanceof LowbitError)) throw e;
          rejected++;
          return;
        }
        loaded++;
        for (const t of result.tensors.values()) {
          // A successful load must honour the invariants the rest of lowbit relies on.
          const n = t.shape.reduce((a, x) => a * x, 1);
          expect(t.bytes.length).toBe(n * DTYPE_BYTES[t.dtype]);
          expect(t.bytes.buffer).toBe(file.buffer);
          if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16' || t.dtype === 'F64') expect(toFloat32(t as RawTensor).length).toBe(n);
        }
      }),
      { numRuns: 2000 },
    );
    expect(loaded + rejected).toBe(2000);
    expect(rejected).toBeGreaterThan(0);
    expect(loaded).toBeGreaterThan(0);
  });
});
