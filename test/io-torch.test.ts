// Tests for the restricted torch.save reader (src/io/torch.ts, zip.ts, pickle.ts): real fixture parity with
// safetensors, hand-built archives and pickles for every refusal, and a mutation fuzz.

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LowbitError } from '../src/errors.js';
import { crc32, readCheckpoint, readSafetensors, readTorchBin, readZip, toFloat32, zipEntryData, DTYPE_BYTES } from '../src/io/index.js';
import { lowbitError, FIXTURE, fixtureBytes } from './helpers.js';




// ---- test builders: a stored-only ZIP writer and a pickle emitter that writes what torch.save writes ------------

interface ZipIn {
  name: string;
  data: Uint8Array;
  method?: number;
}

/** ZIP with stored entries. `zip64` forces ZIP64 extra fields and end records; `align` pads data like torch (64). */
function buildZip(entries: ZipIn[], opts: { zip64?: boolean; align?: number; comment?: string } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let off = 0;
  const enc = new TextEncoder();
  for (const e of entries) {
    const name = enc.encode(e.name);
    const crc = crc32(e.data);
    let pad = 0;
    if (opts.align !== undefined) {
      const start = off + 30 + name.length + 4;
      pad = (opts.align - (start % opts.align)) % opts.align;
    }
    const local = new Uint8Array(30 + name.length + (opts.align !== undefined ? 4 + pad : 0));
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, opts.zip64 ? 45 : 20, true);
    lv.setUint16(6, 0x0800, true);
    lv.setUint16(8, e.method ?? 0, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, e.data.length, true);
    lv.setUint32(22, e.data.length, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, local.length - 30 - name.length, true);
    local.set(name, 30);
    if (opts.align !== undefined) {
      lv.setUint16(30 + name.length, 0x4246, true); // 'FB', torch's padding field
      lv.setUint16(32 + name.length, pad, true);
      local.fill(0x5a, 34 + name.length);
    }
    const extra = opts.zip64 ? 28 : 0;
    const c = new Uint8Array(46 + name.length + extra);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 0x031e, true);
    cv.setUint16(6, opts.zip64 ? 45 : 20, true);
    cv.setUint16(8, 0x0800, true);
    cv.setUint16(10, e.method ?? 0, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, opts.zip64 ? 0xffffffff : e.data.length, true);
    cv.setUint32(24, opts.zip64 ? 0xffffffff : e.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint16(30, extra, true);
    cv.setUint32(42, opts.zip64 ? 0xffffffff : off, true);
    c.set(name, 46);
    if (opts.zip64) {
      const x = 46 + name.length;
      cv.setUint16(x, 1, true);
      cv.setUint16(x + 2, 24, true);
      cv.setBigUint64(x + 4, BigInt(e.data.length), true); // uncompressed
      cv.setBigUint64(x + 12, BigInt(e.data.length), true); // compressed
      cv.setBigUint64(x + 20, BigInt(off), true); // local header offset
    }
    parts.push(local, e.data);
    central.push(c);
    off += local.length + e.data.length;
  }
  const cdOffset = off;
  const cdSize = central.reduce((a, c) => a + c.length, 0);
  const tail: Uint8Array[] = [...central];
  if (opts.zip64) {
    const rec = new Uint8Array(56);
    const rv = new DataView(rec.buffer);
    rv.setUint32(0, 0x06064b50, true);
    rv.setBigUint64(4, 44n, true);
    rv.setUint16(12, 45, true);
    rv.setUint16(14, 45, true);
    rv.setBigUint64(24, BigInt(entries.length), true);
    rv.setBigUint64(32, BigInt(entries.length), true);
    rv.setBigUint64(40, BigInt(cdSize), true);
    rv.setBigUint64(48, BigInt(cdOffset), true);
    const loc = new Uint8Array(20);
    const lv = new DataView(loc.buffer);
    lv.setUint32(0, 0x07064b50, true);
    lv.setBigUint64(8, BigInt(cdOffset + cdSize), true);
    lv.setUint32(16, 1, true);
    tail.push(rec, loc);
  }
  const comment = enc.encode(opts.comment ?? '');
  const eocd = new Uint8Array(22 + comment.length);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, opts.zip64 ? 0xffff : entries.length, true);
  ev.setUint16(10, opts.zip64 ? 0xffff : entries.length, true);
  ev.setUint32(12, opts.zip64 ? 0xffffffff : cdSize, true);
  ev.setUint32(16, opts.zip64 ? 0xffffffff : cdOffset, true);
  ev.setUint16(20, comment.length, true);
  eocd.set(comment, 22);
  tail.push(eocd);
  const all = [...parts, ...tail];
  const out = new Uint8Array(all.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of all) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Emits pickle opcodes the way CPython's pickler does for a torch state dict (protocol 2, or 4 with FRAME/MEMOIZE). */
class Pickler {
  readonly b: number[] = [];
  private memo = 0;
  constructor(readonly proto: 2 | 4 = 2) {
    this.op(0x80, proto);
    if (proto === 4) this.op(0x95, 0, 0, 0, 0, 0, 0, 0, 0); // FRAME (length is not checked by readers that hold every byte)
  }
  op(...xs: number[]): this {
    this.b.push(...xs);
    return this;
  }
  u32(n: number): this {
    return this.op(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  }
  put(): this {
    if (this.proto === 4) return this.op(0x94);
    const i = this.memo++;
    return i < 256 ? this.op(0x71, i) : this.op(0x72).u32(i);
  }
  str(s: string): this {
    const u = new TextEncoder().encode(s);
    if (this.proto === 4 && u.length < 256) this.op(0x8c, u.length);
    else this.op(0x58).u32(u.length);
    return this.op(...u).put();
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.op(0x4b, n);
    if (n >= 0 && n < 65536) return this.op(0x4d, n & 0xff, n >>> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.op(0x4a).u32(n >>> 0);
    let v = BigInt(n);
    const bytes: number[] = [];
    while (v !== 0n && v !== -1n) {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
    }
    if (n > 0 && (bytes[bytes.length - 1]! & 0x80) !== 0) bytes.push(0);
    return this.op(0x8a, bytes.length, ...bytes);
  }
  global(module: string, name: string): this {
    if (this.proto === 4) return this.str(module).str(name).op(0x93).put();
    return this.op(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`)).put();
  }
  tuple(items: ((p: this) => void)[]): this {
    if (items.length === 0) return this.op(0x29);
    if (items.length > 3) this.op(0x28);
    for (const f of items) f(this);
    return this.op(items.length > 3 ? 0x74 : [0, 0x85, 0x86, 0x87][items.length]!).put();
  }
  orderedDict(): this {
    return this.global('collections', 'OrderedDict').op(0x29, 0x52).put();
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.b);
  }
}

interface TensorSpec {
  name: string;
  storage: 'FloatStorage' | 'HalfStorage' | 'BFloat16Storage';
  key: string;
  numel: number;
  offset: number;
  size: number[];
  stride: number[];
  parameter?: boolean;
}

/** The pickle torch.save writes for `{name: tensor}` (optionally an OrderedDict with a `_metadata` BUILD). */
function stateDictPickle(specs: TensorSpec[], opts: { proto?: 2 | 4; ordered?: boolean } = {}): Uint8Array {
  const p = new Pickler(opts.proto ?? 2);
  if (opts.ordered) p.orderedDict();
  else p.op(0x7d).put();
  p.op(0x28);
  for (const s of specs) {
    p.str(s.name);
    if (s.parameter) p.global('torch._utils', '_rebuild_parameter').op(0x28);
    p.global('torch._utils', '_rebuild_tensor_v2').op(0x28);
    p.op(0x28).str('storage').global('torch', s.storage).str(s.key).str('cpu').int(s.numel).op(0x74).put().op(0x51);
    p.int(s.offset);
    p.tuple(s.size.map((d) => (q: Pickler) => void q.int(d)));
    p.tuple(s.stride.map((d) => (q: Pickler) => void q.int(d)));
    p.op(0x89).orderedDict().op(0x74).put().op(0x52).put();
    if (s.parameter) p.op(0x88).orderedDict().op(0x74).put().op(0x52).put();
  }
  p.op(0x75);
  if (opts.ordered) {
    // state = {'_metadata': OrderedDict([('', {'version': 1})])}, as nn.Module.state_dict() leaves it
    p.op(0x7d).put().str('_metadata').orderedDict().str('').op(0x7d).put().str('version').int(1).op(0x73).op(0x73).op(0x73).op(0x62);
  }
  p.op(0x2e);
  return p.bytes();
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function torchZip(pkl: Uint8Array, storages: Record<string, Uint8Array>, opts: { prefix?: string; zip64?: boolean; align?: number } = {}): Uint8Array {
  const prefix = opts.prefix ?? 'archive';
  return buildZip(
    [
      { name: `${prefix}/data.pkl`, data: pkl },
      ...Object.entries(storages).map(([k, v]) => ({ name: `${prefix}/data/${k}`, data: v })),
      { name: `${prefix}/version`, data: new TextEncoder().encode('3\n') },
    ],
    opts,
  );
}

/** A hand-built pickle around one F32 storage "0" of [0, 1, 2, 3, 4, 5]. */
function withPickle(pkl: Uint8Array): Uint8Array {
  return torchZip(pkl, { '0': f32Bytes([0, 1, 2, 3, 4, 5]) });
}

const floats = (t: { dtype: 'F32' | 'F16' | 'BF16' | string; shape: number[]; bytes: Uint8Array; name: string }): number[] =>
  Array.from(toFloat32(t as Parameters<typeof toFloat32>[0]));

// ---- the fixture ---------------------------------------------------------------------------------------

describe('torch.save fixture', () => {
  const bin = fixtureBytes('pytorch_model.bin');
  const st = readSafetensors(fixtureBytes('model.safetensors')).tensors;

  it('matches model.safetensors bit for bit for every tensor (keys differ by the model. prefix)', () => {
    const { tensors } = readTorchBin(bin, { fileName: 'pytorch_model.bin' });
    expect(tensors.size).toBe(st.size);
    for (const [name, t] of tensors) {
      expect(name.startsWith('decoder.')).toBe(true);
      const ref = st.get(`model.${name}`);
      expect(ref, name).toBeDefined();
      expect(t.dtype).toBe(ref!.dtype);
      expect(t.shape).toEqual(ref!.shape);
      expect(Buffer.compare(Buffer.from(t.bytes), Buffer.from(ref!.bytes)), name).toBe(0);
      expect(t.bytes.buffer).toBe(bin.buffer); // zero copy
    }
    expect(readCheckpoint(bin).format).toBe('torch');
  });

  it('reads its ZIP directory (data-descriptor flag, torch padding) with correct CRCs', () => {
    const zip = readZip(bin, { fileName: 'pytorch_model.bin' });
    expect(zip.entries.has('pytorch_model/data.pkl')).toBe(true);
    for (const e of zip.entries.values()) expect(crc32(zipEntryData(zip, e))).toBe(e.crc32);
  });

  it('reads the same archive repacked under archive/ with ZIP64 fields, a comment, or no alignment', () => {
    const zip = readZip(bin);
    const entries = [...zip.entries.values()].map((e) => ({ name: e.name.replace(/^pytorch_model\//, 'archive/'), data: zipEntryData(zip, e) }));
    const ref = readTorchBin(bin).tensors;
    for (const opts of [{ zip64: true }, { align: 64, comment: 'lowbit' }, {}]) {
      const repacked = readTorchBin(buildZip(entries, opts)).tensors;
      expect([...repacked.keys()]).toEqual([...ref.keys()]);
      for (const [k, t] of repacked) expect(Buffer.compare(Buffer.from(t.bytes), Buffer.from(ref.get(k)!.bytes))).toBe(0);
    }
  });
});

// ---- hand-built checkpoints ---------------------------------------------------------------------------

describe('restricted pickle VM', () => {
  const base: TensorSpec = { name: 'w', storage: 'FloatStorage', key: '0', numel: 6, offset: 0, size: [2, 3], stride: [3, 1] };

  it('reads protocol 2 and protocol 4 pickles, OrderedDict with _metadata, and _rebuild_parameter', () => {
    for (const proto of [2, 4] as const) {
      for (const ordered of [false, true]) {
        const pkl = stateDictPickle([base, { ...base, name: 'p', parameter: true, offset: 4, size: [2], stride: [1] }], { proto, ordered });
        const file = withPickle(pkl);
        const { tensors } = readTorchBin(file);
        expect([...tensors.keys()]).toEqual(['w', 'p']);
        expect(tensors.get('w')!.shape).toEqual([2, 3]);
        expect(floats(tensors.get('w')!)).toEqual([0, 1, 2, 3, 4, 5]);
        expect(floats(tensors.get('p')!)).toEqual([4, 5]);
        expect(tensors.get('p')!.bytes.buffer).toBe(file.buffer); // contiguous slices stay zero-copy
      }
    }
  });

  it('materialises transposed, strided and expanded views in row-major order', () => {
    const pkl = stateDictPickle([
      { ...base, name: 't', size: [3, 2], stride: [1, 3] },
      { ...base, name: 's', offset: 1, size: [2], stride: [2] },
      { ...base, name: 'e', size: [2, 3], stride: [0, 1] },
      { ...base, name: 'one', offset: 5, size: [1, 1], stride: [7, 9] },
      { ...base, name: 'z', size: [0, 4], stride: [4, 1] },
      { ...base, name: 'scalar', offset: 2, size: [], stride: [] },
    ]);
    const { tensors } = readTorchBin(withPickle(pkl));
    expect(floats(tensors.get('t')!)).toEqual([0, 3, 1, 4, 2, 5]);
    expect(floats(tensors.get('s')!)).toEqual([1, 3]);
    expect(floats(tensors.get('e')!)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(floats(tensors.get('one')!)).toEqual([5]);
    expect(tensors.get('z')!.bytes.length).toBe(0);
    expect(tensors.get('scalar')!.shape).toEqual([]);
    expect(floats(tensors.get('scalar')!)).toEqual([2]);
  });

  it('materialises any permuted/sliced/expanded view like the index formula (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: 3 }),
        fc.nat(),
        fc.integer({ min: -1, max: 3 }),
        (dims, offset, permSeed, zeroDim) => {
          // Strides of a contiguous tensor of shape `dims`, permuted; optionally one dim expanded (stride 0).
          const nd = dims.length;
          const perm = Array.from({ length: nd }, (_, i) => i).sort((a, b) => ((a * 7 + permSeed) % 5) - ((b * 7 + permSeed) % 5) || a - b);
          const base = new Array<number>(nd);
          let acc = 1;
          for (let d = nd - 1; d >= 0; d--) {
            base[perm[d]!] = acc;
            acc *= dims[perm[d]!]!;
          }
          const stride = base.map((st, d) => (d === zeroDim ? 0 : st));
          const numel = acc + offset;
          const storage = Float32Array.from({ length: numel }, (_, i) => i);
          const pkl = stateDictPickle([{ name: 'x', storage: 'FloatStorage', key: '0', numel, offset, size: dims, stride }]);
          const t = readTorchBin(torchZip(pkl, { '0': new Uint8Array(storage.buffer) })).tensors.get('x')!;
          const want: number[] = [];
          const idx = new Array<number>(nd).fill(0);
          const total = dims.reduce((a, b) => a * b, 1);
          for (let i = 0; i < total; i++) {
            let r = i;
            for (let d = nd - 1; d >= 0; d--) {
              idx[d] = r % dims[d]!;
              r = Math.floor(r / dims[d]!);
            }
            want.push(offset + idx.reduce((a, v, d) => a + v * stride[d]!, 0));
          }
          expect(t.shape).toEqual(dims);
          expect(floats(t)).toEqual(want);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('maps Half and BFloat16 storages to F16 and BF16, and shares one storage between tensors', () => {
    const h = new Uint8Array([0x00, 0x3c, 0x00, 0xc0]); // f16 [1, -2]
    const b = new Uint8Array([0x80, 0x3f, 0x40, 0x40]); // bf16 [1, 3]
    const pkl = stateDictPickle([
      { ...base, name: 'h', storage: 'HalfStorage', key: 'h', numel: 2, size: [2], stride: [1] },
      { ...base, name: 'b', storage: 'BFloat16Storage', key: 'b', numel: 2, size: [2], stride: [1] },
      { ...base, name: 'tied', storage: 'HalfStorage', key: 'h', numel: 2, size: [2], stride: [1] },
    ]);
    const { tensors } = readTorchBin(torchZip(pkl, { h, b }));
    expect(tensors.get('h')!.dtype).toBe('F16');
    expect(floats(tensors.get('h')!)).toEqual([1, -2]);
    expect(tensors.get('b')!.dtype).toBe('BF16');
    expect(floats(tensors.get('b')!)).toEqual([1, 3]);
    expect(tensors.get('tied')!.bytes.byteOffset).toBe(tensors.get('h')!.bytes.byteOffset);
  });

  it('handles LONG1 and BININT sizes', () => {
    const p = new Pickler(2);
    expect(Array.from(p.int(2 ** 40).bytes().subarray(2))).toEqual([0x8a, 6, 0, 0, 0, 0, 0, 1]);
    const big = stateDictPickle([{ ...base, numel: 2 ** 40, size: [2 ** 40], stride: [1] }]);
    // numel 2^40 cannot match the 24-byte storage entry: a clean E_FORMAT, not an allocation.
    const e = lowbitError(() => readTorchBin(withPickle(big)));
    expect(e.code).toBe('E_FORMAT');
    expect(e.message).toContain('archive/data/0');
  });

  describe('refuses globals and opcodes outside the subset with E_UNSAFE, naming them and their byte offset', () => {
    const cases: { what: string; pkl: () => Uint8Array; mentions: string[]; offset: number }[] = [
      {
        what: 'GLOBAL os.system',
        pkl: () => new Pickler(2).global('os', 'system').op(0x2e).bytes(),
        mentions: ["'os.system'", 'byte 2'],
        offset: 2,
      },
      {
        what: 'STACK_GLOBAL builtins.eval',
        pkl: () => new Pickler(4).str('builtins').str('eval').op(0x93).bytes(),
        mentions: ["'builtins.eval'"],
        offset: 11 + 10 + 1 + 6 + 1,
      },
      {
        what: 'a storage type outside the allowed list (torch.LongStorage)',
        pkl: () => new Pickler(2).op(0x7d).global('torch', 'LongStorage').bytes(),
        mentions: ["'torch.LongStorage'"],
        offset: 3,
      },
      {
        what: 'a lookalike global (torch._utils._rebuild_tensor)',
        pkl: () => new Pickler(2).global('torch._utils', '_rebuild_tensor').bytes(),
        mentions: ["'torch._utils._rebuild_tensor'"],
        offset: 2,
      },
      { what: 'INST', pkl: () => Uint8Array.from([0x80, 2, 0x28, 0x69, ...new TextEncoder().encode('os\nsystem\n'), 0x2e]), mentions: ['INST'], offset: 3 },
      { what: 'NEWOBJ', pkl: () => Uint8Array.from([0x80, 2, 0x29, 0x29, 0x81, 0x2e]), mentions: ['NEWOBJ'], offset: 4 },
      { what: 'EXT1', pkl: () => Uint8Array.from([0x80, 2, 0x82, 1, 0x2e]), mentions: ['EXT1'], offset: 2 },
      { what: 'BINBYTES', pkl: () => Uint8Array.from([0x80, 2, 0x42, 0, 0, 0, 0, 0x2e]), mentions: ['BINBYTES'], offset: 2 },
      {
        what: 'BUILD on a non-dict with state',
        pkl: () => {
          // A BUILD with state {1: 2} applied to the first tensor, right after its REDUCE.
          const full = stateDictPickle([base]);
          return Uint8Array.from([...full.subarray(0, full.length - 2), 0x7d, 0x4b, 1, 0x4b, 2, 0x73, 0x62, 0x75, 0x2e]);
        },
        mentions: ['BUILD'],
        offset: -1,
      },
    ];
    for (const c of cases) {
      it(c.what, () => {
        const pkl = c.pkl();
        const e = lowbitError(() => readTorchBin(withPickle(pkl), { fileName: 'evil.bin' }));
        expect(e.code).toBe('E_UNSAFE');
        expect(e.message).toContain('evil.bin:archive/data.pkl');
        for (const m of c.mentions) expect(e.message).toContain(m);
        if (c.offset >= 0) expect(e.details?.['offset']).toBe(c.offset);
        else expect(e.message).toMatch(/at byte \d+/);
      });
    }
  });

  describe('rejects pickles that are not flat state dicts, and malformed pickles, with E_FORMAT', () => {
    const nested = (): Uint8Array => {
      const inner = stateDictPickle([base]);
      const p = new Pickler(2).op(0x7d).put().str('state_dict');
      p.op(...inner.subarray(2, inner.length - 1)); // the inner dict's opcodes without PROTO and STOP
      return p.op(0x73, 0x2e).bytes();
    };
    const cases: { what: string; pkl: () => Uint8Array; mentions: string[] }[] = [
      { what: 'a list', pkl: () => new Pickler(2).op(0x5d, 0x2e).bytes(), mentions: ['not a state dict'] },
      { what: 'a dict of ints', pkl: () => new Pickler(2).op(0x7d).str('a').int(1).op(0x73, 0x2e).bytes(), mentions: ["'a' is not a tensor"] },
      { what: "a nested {'state_dict': {...}}", pkl: nested, mentions: ["'state_dict' is not a tensor"] },
      { what: 'no STOP', pkl: () => new Pickler(2).op(0x7d).bytes(), mentions: ['without STOP'] },
      { what: 'stack underflow', pkl: () => new Pickler(2).op(0x73).bytes(), mentions: ['underflow'] },
      { what: 'BINGET of an unset memo slot', pkl: () => new Pickler(2).op(0x68, 9).bytes(), mentions: ['memo index 9'] },
      { what: 'a truncated string', pkl: () => new Pickler(2).op(0x58).u32(1000).op(0x41).bytes(), mentions: ['truncated'] },
      { what: 'a byte that is no opcode', pkl: () => new Pickler(2).op(0xff).bytes(), mentions: ['0xff'] },
      {
        what: 'a view past the end of its storage',
        pkl: () => stateDictPickle([{ ...base, offset: 1, size: [2, 3], stride: [3, 1] }]),
        mentions: ['reaches element 6', "storage '0'"],
      },
      {
        what: 'size and stride of different lengths',
        pkl: () => stateDictPickle([{ ...base, size: [6], stride: [1, 1] }]),
        mentions: ['size has 1 dims but stride has 2'],
      },
      {
        what: 'a storage key that leaves the data folder',
        pkl: () => stateDictPickle([{ ...base, key: '../data.pkl' }]),
        mentions: ["'../data.pkl'"],
      },
      { what: 'a missing storage entry', pkl: () => stateDictPickle([{ ...base, key: '7' }]), mentions: ['archive/data/7', 'missing'] },
      { what: 'a storage of the wrong size', pkl: () => stateDictPickle([{ ...base, numel: 5, size: [5], stride: [1] }]), mentions: ['24 bytes', '5 F32'] },
    ];
    for (const c of cases) {
      it(c.what, () => {
        const e = lowbitError(() => readTorchBin(withPickle(c.pkl()), { fileName: 'bad.bin' }));
        expect(e.code).toBe('E_FORMAT');
        expect(e.message).toContain('bad.bin');
        expect(e.message).toMatch(/byte \d+/);
        for (const m of c.mentions) expect(e.message).toContain(m);
      });
    }

    it('a newer pickle protocol is E_VERSION', () => {
      expect(lowbitError(() => readTorchBin(withPickle(Uint8Array.from([0x80, 6, 0x7d, 0x2e])))).code).toBe('E_VERSION');
    });
  });
});

describe('zip container', () => {
  const pkl = stateDictPickle([{ name: 'w', storage: 'FloatStorage', key: '0', numel: 2, offset: 0, size: [2], stride: [1] }]);
  const storage = f32Bytes([1, 2]);

  it('rejects compressed entries with E_FORMAT naming the entry', () => {
    const file = buildZip([
      { name: 'archive/data.pkl', data: pkl },
      { name: 'archive/data/0', data: storage, method: 8 },
    ]);
    const e = lowbitError(() => readTorchBin(file, { fileName: 'deflated.bin' }));
    expect(e.code).toBe('E_FORMAT');
    expect(e.message).toContain("'archive/data/0'");
    expect(e.message).toContain('method 8');
  });

  it('finds the pickle under any single-folder prefix and rejects archives without exactly one', () => {
    expect(readTorchBin(torchZip(pkl, { '0': storage }, { prefix: 'my_model' })).tensors.has('w')).toBe(true);
    const none = buildZip([{ name: 'data.pkl', data: pkl }]);
    expect(lowbitError(() => readTorchBin(none)).message).toContain('data.pkl');
    const two = buildZip([
      { name: 'a/data.pkl', data: pkl },
      { name: 'b/data.pkl', data: pkl },
    ]);
    expect(lowbitError(() => readTorchBin(two)).code).toBe('E_FORMAT');
  });

  it('rejects big-endian archives, legacy pickles and non-zip input with clear codes', () => {
    const be = buildZip([
      { name: 'archive/data.pkl', data: pkl },
      { name: 'archive/byteorder', data: new TextEncoder().encode('big') },
      { name: 'archive/data/0', data: storage },
    ]);
    expect(lowbitError(() => readTorchBin(be)).code).toBe('E_UNSUPPORTED');
    const le = buildZip([
      { name: 'archive/data.pkl', data: pkl },
      { name: 'archive/byteorder', data: new TextEncoder().encode('little') },
      { name: 'archive/data/0', data: storage },
    ]);
    expect(floats(readTorchBin(le).tensors.get('w')!)).toEqual([1, 2]);
    expect(lowbitError(() => readTorchBin(Uint8Array.from([0x80, 2, 0x8a, 0x0a]))).code).toBe('E_UNSUPPORTED');
    expect(lowbitError(() => readTorchBin(new Uint8Array(100))).code).toBe('E_FORMAT');
    expect(lowbitError(() => readZip(Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0]))).code).toBe('E_FORMAT');
  });
});

// ---- fuzz ------------------------------------------------------------------------------------------


/** Positions are fractions in [0, 1) of one region, so structure (pickle, central directory) is hit often. */
const posArb = fc.tuple(fc.nat({ max: 2 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }));
const mutationArb = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), pos: posArb, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), pos: posArb, value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant('u32' as const),
    pos: posArb,
    value: fc.oneof(fc.constantFrom(0, 1, 0xffff, 0x7fffffff, 0xffffffff, 0x04034b50, 0x02014b50), fc.nat()),
  }),
  fc.record({ kind: fc.constant('truncate' as const), pos: posArb }),
  fc.record({ kind: fc.constant('insert' as const), pos: posArb, bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }) }),
  fc.record({ kind: fc.constant('delete' as const), pos: posArb, n: fc.integer({ min: 1, max: 6 }) }),
);
/** One mutation; `pos` is [region index, fraction of the region]. */
type MutIn = { kind: 'flip' | 'set' | 'u32' | 'truncate' | 'insert' | 'delete'; pos: [number, number]; bit?: number; value?: number; bytes?: Uint8Array; n?: number };

function mutateZip(src: Uint8Array, regions: [number, number][], muts: MutIn[]): Uint8Array {
  let b = src.slice();
  for (const m of muts) {
    const [r, frac] = m.pos;
    const [lo, hi] = regions[r % regions.length]!;
    const p = Math.min(b.length, lo + Math.floor(frac * Math.max(0, Math.min(hi, b.length) - lo)));
    switch (m.kind) {
      case 'flip':
        if (p < b.length) b[p]! ^= 1 << m.bit!;
        break;
      case 'set':
        if (p < b.length) b[p] = m.value!;
        break;
      case 'u32':
        if (p + 4 <= b.length) new DataView(b.buffer, b.byteOffset).setUint32(p, m.value! >>> 0, true);
        break;
      case 'truncate':
        b = b.slice(0, p);
        break;
      case 'insert': {
        const n = new Uint8Array(b.length + m.bytes!.length);
        n.set(b.subarray(0, p));
        n.set(m.bytes!, p);
        n.set(b.subarray(p), p + m.bytes!.length);
        b = n;
        break;
      }
      case 'delete': {
        const end = Math.min(b.length, p + m.n!);
        const n = new Uint8Array(b.length - (end - p));
        n.set(b.subarray(0, p));
        n.set(b.subarray(end), p);
        b = n;
        break;
      }
    }
  }
  return b;
}

/** [whole file, the pickle, the central directory to the end]. */
function regionsOf(file: Uint8Array): [number, number][] {
  const zip = readZip(file);
  const pklEntry = [...zip.entries.values()].find((e) => e.name.endsWith('/data.pkl'))!;
  const pkl = zipEntryData(zip, pklEntry);
  const cdStart = Math.max(...[...zip.entries.values()].map((e) => e.localHeaderOffset + 30 + e.name.length + e.size));
  return [
    [0, file.length],
    [pkl.byteOffset - file.byteOffset, pkl.byteOffset - file.byteOffset + pkl.length],
    [cdStart, file.length],
  ];
}

function fuzzTorch(name: string, base: Uint8Array, runs: number): void {
  it(`${name}: ${runs} mutation sequences load or fail with LowbitError`, () => {
    const regions = regionsOf(base);
    let loaded = 0;
    let rejected = 0;
    const codes = new Set<string>();
    fc.assert(
      fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (muts) => {
        const file = mutateZip(base, regions, muts as MutIn[]);
        let tensors;
        try {
          tensors = readTorchBin(file, { fileName: 'fuzz.bin' }).tensors;
        } catch (e) {
          if (!(e instanceof LowbitError)) throw e;
          codes.add(e.code);
          rejected++;
          return;
        }
        loaded++;
        for (const t of tensors.values()) {
          const n = t.shape.reduce((a, x) => a * x, 1);
          expect(t.bytes.length).toBe(n * DTYPE_BYTES[t.dtype]);
          expect(toFloat32(t).length).toBe(n);
        }
      }),
      { numRuns: runs },
    );
    expect(loaded + rejected).toBe(runs);
    expect(loaded).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(0);
    expect(codes.has('E_FORMAT')).toBe(true);
  });
}

describe('fuzz: random opcode programs on the restricted VM', () => {
  // Mostly opcodes of the subset (with the operand bytes they take), some from outside it, plus raw bytes.
  const subsetOp = fc.oneof(
    fc.constantFrom(0x28, 0x29, 0x5d, 0x7d, 0x4e, 0x88, 0x89, 0x74, 0x85, 0x86, 0x87, 0x73, 0x75, 0x61, 0x65, 0x52, 0x51, 0x62, 0x94, 0x2e, 0x93).map((o) => [o]),
    fc.tuple(fc.constantFrom(0x4b, 0x71, 0x68, 0x80), fc.integer({ min: 0, max: 8 })).map(([o, a]) => [o, a]),
    fc.tuple(fc.constantFrom(0x4d), fc.integer({ min: 0, max: 65535 })).map(([o, a]) => [o, a & 0xff, a >> 8]),
    fc.tuple(fc.constantFrom(0x4a, 0x72, 0x6a), fc.integer({ min: 0, max: 12 })).map(([o, a]) => [o, a, 0, 0, 0]),
    fc.tuple(fc.constantFrom(0x8a), fc.uint8Array({ maxLength: 10 })).map(([o, b]) => [o, b.length, ...b]),
    fc.constantFrom('storage', 'cpu', '0', 'w', 'collections', 'OrderedDict', 'torch', 'FloatStorage', 'torch._utils', '_rebuild_tensor_v2').map((t) => [
      0x8c,
      t.length,
      ...new TextEncoder().encode(t),
    ]),
    fc.constantFrom(
      'torch._utils\n_rebuild_tensor_v2\n',
      'collections\nOrderedDict\n',
      'torch\nFloatStorage\n',
      'torch\nHalfStorage\n',
      'torch._utils\n_rebuild_parameter\n',
      'os\nsystem\n',
    ).map((t) => [0x63, ...new TextEncoder().encode(t)]),
    fc.uint8Array({ minLength: 1, maxLength: 3 }).map((b) => [...b]),
  );
  it('runs 2000 random programs: each loads or fails with LowbitError', () => {
    const codes = new Map<string, number>();
    let loaded = 0;
    fc.assert(
      fc.property(fc.array(subsetOp, { maxLength: 60 }), (ops) => {
        const pkl = Uint8Array.from([0x80, 2, ...ops.flat(), 0x2e]);
        try {
          readTorchBin(withPickle(pkl));
          loaded++;
        } catch (e) {
          if (!(e instanceof LowbitError)) throw e;
          codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
        }
      }),
      { numRuns: 2000 },
    );
    expect(codes.get('E_FORMAT')).toBeGreaterThan(0);
    expect(codes.get('E_UNSAFE')).toBeGreaterThan(0);
    expect(loaded + [...codes.values()].reduce((a, b) => a + b, 0)).toBe(2000);
  });

  it('loads every prefix-truncation of a real state-dict pickle or rejects it with E_FORMAT', () => {
    const pkl = stateDictPickle(
      [
        { name: 'w', storage: 'FloatStorage', key: '0', numel: 6, offset: 0, size: [3, 2], stride: [1, 3], parameter: true },
        { name: 'v', storage: 'FloatStorage', key: '0', numel: 6, offset: 2, size: [4], stride: [1] },
      ],
      { proto: 4, ordered: true },
    );
    expect(readTorchBin(withPickle(pkl)).tensors.size).toBe(2);
    for (let n = 0; n < pkl.length; n++) {
      const e = lowbitError(() => readTorchBin(withPickle(pkl.subarray(0, n))));
      expect(e.code).toBe('E_FORMAT');
    }
  });
});

describe('fuzz: mutated torch.save archives', () => {
  const small = torchZip(
    stateDictPickle(
      [
        { name: 'w', storage: 'FloatStorage', key: '0', numel: 6, offset: 0, size: [2, 3], stride: [3, 1] },
        { name: 't', storage: 'FloatStorage', key: '0', numel: 6, offset: 0, size: [3, 2], stride: [1, 3] },
        { name: 'h', storage: 'HalfStorage', key: '1', numel: 4, offset: 1, size: [3], stride: [1], parameter: true },
      ],
      { ordered: true },
    ),
    { '0': f32Bytes([0, 1, 2, 3, 4, 5]), '1': new Uint8Array([0, 0x3c, 0, 0x40, 0, 0x42, 0, 0x44]) },
    { align: 64 },
  );
  fuzzTorch('small hand-built archive', small, 1500);
  fuzzTorch('opt-tiny fixture', fixtureBytes('pytorch_model.bin'), 300);
});
