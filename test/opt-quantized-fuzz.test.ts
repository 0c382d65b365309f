// Damaged quantized OPT files: truncated, or with bytes overwritten in the header, the metadata JSON, the
// integer tables (permutations, cluster offsets, zero points) or anywhere in the tensor data. Loading either fails with a
// LowbitError or gives a model whose forward pass, generation and KV cache either run or fail with a
// LowbitError: never a raw TypeError/RangeError, never a WASM trap, and the backend still runs the
// undamaged file to bit-equal logits afterwards (the instance survived).

import { describe, expect, it, beforeAll } from 'vitest';
import fc from 'fast-check';
import { createBackend, type Backend } from '../src/runtime.js';
import { LowbitError } from '../src/errors.js';
import { randomOPT } from '../src/models/opt/index.js';
import { QRunState, qforward, type QuantizedOPT } from '../src/models/opt/quantized.js';
import { saveQuantizedOPT, loadQuantizedOPT } from '../src/models/opt/qio.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { quantizeOPT, rptqRecipe } from '../src/quant/rptq/index.js';
import { mulberry32 } from '../src/models/opt/sample.js';

const calib = (() => { const r = mulberry32(11); return Int32Array.from({ length: 512 }, () => 4 + Math.floor(r() * 500)); })();
const probe = [2, 17, 99, 300, 45, 8];

/** Prefill of `probe`, then two decode steps; every logit row concatenated. */
function run(qm: QuantizedOPT): Float32Array {
  const s = new QRunState(qm, { maxContext: 16 });
  try {
    const a = qforward(qm, s, probe, 0, { logits: 'all' }).slice();
    const b = qforward(qm, s, [5], probe.length).slice();
    const c = qforward(qm, s, [9], probe.length + 1).slice();
    const out = new Float32Array(a.length + b.length + c.length);
    out.set(a); out.set(b, a.length); out.set(c, a.length + b.length);
    return out;
  } finally { s.dispose(); }
}

/** Byte ranges of a safetensors file: the 8-byte length, the JSON header, and each integer tensor's data. */
function regions(bytes: Uint8Array): { header: [number, number]; ints: Array<[number, number]> } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const st = readSafetensors(bytes);
  const ints: Array<[number, number]> = [];
  for (const t of st.tensors.values()) {
    if (t.dtype === 'F32' || t.bytes.length === 0) continue;
    const at = t.bytes.byteOffset - bytes.byteOffset;
    ints.push([at, at + t.bytes.length]);
  }
  return { header: [8, 8 + n], ints };
}

type Damage = { kind: 'truncate'; at: number } | { kind: 'write'; where: 'header' | 'ints' | 'data'; picks: Array<[number, number, number]> };

function damage(bytes: Uint8Array, d: Damage, r: ReturnType<typeof regions>): Uint8Array {
  if (d.kind === 'truncate') return bytes.slice(0, Math.floor(d.at * bytes.length));
  const out = bytes.slice();
  for (const [a, b, v] of d.picks) {
    let [lo, hi] = d.where === 'header' ? r.header : [r.header[1], bytes.length];
    if (d.where === 'ints') [lo, hi] = r.ints[Math.floor(a * r.ints.length)]!;
    const i = lo + Math.floor(b * (hi - lo));
    // header: printable characters and JSON punctuation, so the damage is often still JSON; elsewhere any byte
    out[i] = d.where === 'header' ? '0123456789-.,:"{}[]e'.charCodeAt(v % 20) : v;
  }
  return out;
}

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const damages: fc.Arbitrary<Damage> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: unit }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      where: fc.constantFrom('header' as const, 'ints' as const, 'data' as const),
      picks: fc.array(fc.tuple(unit, unit, fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
    }),
  },
);

describe('damaged quantized files', () => {
  let be: Backend;
  const files: Record<string, { bytes: Uint8Array; logits: Float32Array; r: ReturnType<typeof regions> }> = {};
  beforeAll(async () => {
    be = await createBackend('simd');
    const model = randomOPT({ backend: be, config: 'tiny', seed: 5, outliers: { count: 4 } });
    // W4A4: integer activations per cluster; W3A3KV: a 3-bit packed KV cache walked by attention_packed
    for (const name of ['W4A4', 'W3A3KV'] as const) {
      const recipe = rptqRecipe(name, { calibration: { samples: 2, seqLen: 64 }, kmeans: { nInit: 1 }, bits: { lmHead: 4 } });
      const qm = quantizeOPT(model, recipe, { calibration: calib });
      const bytes = saveQuantizedOPT(qm);
      files[name] = { bytes, logits: run(qm), r: regions(bytes) };
      qm.dispose();
    }
  }, 120_000);

  for (const name of ['W4A4', 'W3A3KV'] as const) {
    it(`${name}: every damaged file is a LowbitError or a model that runs (or refuses with a LowbitError)`, () => {
      const f = files[name]!;
      const outcomes = { refused: 0, ranRefused: 0, ran: 0 };
      fc.assert(fc.property(damages, (d) => {
        const bytes = damage(f.bytes, d, f.r);
        let qm: QuantizedOPT;
        try {
          qm = loadQuantizedOPT(bytes, { backend: be });
        } catch (e) {
          if (!(e instanceof LowbitError)) throw new Error(`load threw a ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
          outcomes.refused++;
          return;
        }
        try {
          run(qm);
          outcomes.ran++;
        } catch (e) {
          if (!(e instanceof LowbitError)) throw new Error(`forward threw a ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
          outcomes.ranRefused++;
        } finally {
          qm.dispose();
        }
      }), { numRuns: 150, seed: 20261125 });
      // both outcomes occur (a property that only ever refuses would not exercise the kernels)
      expect(outcomes.refused).toBeGreaterThan(0);
      expect(outcomes.ran).toBeGreaterThan(0);
      // the instance survived: the undamaged file still runs to the same logits, bit for bit
      const qm = loadQuantizedOPT(f.bytes, { backend: be });
      try {
        expect(Buffer.from(run(qm).buffer).equals(Buffer.from(f.logits.buffer))).toBe(true);
      } finally { qm.dispose(); }
    }, 300_000);
  }
});
