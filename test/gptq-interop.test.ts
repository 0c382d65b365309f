// AutoGPTQ / GPTQModel checkpoint interop: lowbit's exporter → loader round trip for bits 2/3/4/8 with
// and without act-order, a hand-built file whose packing follows the format's documentation, and the
// bad-input errors.
//
// The layout, as documented by AutoGPTQ's packing code (auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py
// `QuantLinear.pack`, https://github.com/AutoGPTQ/AutoGPTQ) and GPTQModel's README (checkpoint_format
// gptq / gptq_v2, https://github.com/ModelCloud/GPTQModel):
//   qweight int32 [in·bits/32, out]; for bits in {2,4,8}: qweight[row] |= intweight[j] << (bits·(j − i)),
//     i = row · 32/bits, j = i .. i + 32/bits − 1  (input i of a column in the low bits of its word)
//   for 3 bits, per 3 rows (32 inputs): row0 = codes 0..9 at 3·j, code 10 << 30; row1 = (code 10 >> 2) & 1,
//     codes 11..20 at 3·j + 1, code 21 << 31; row2 = (code 21 >> 1) & 3, codes 22..31 at 3·j + 2
//   qzeros int32 [groups, out·bits/32], the same packing along outputs, of zero − 1 ('gptq') or zero ('gptq_v2')
//   scales fp16 [groups, out]; g_idx int32 [in]
// The packers below are transcriptions of those loops, written independently of src/quant/gptq/autogptq.ts.

import { describe, it, expect, beforeAll } from 'vitest';
import { createBackend, type Backend } from '../src/runtime.js';
import { randomOPT } from '../src/models/opt/random.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { f32ToF16Bits, f16BitsToF32Bits } from '../src/io/tensor.js';
import { mulberry32 } from '../src/models/opt/sample.js';
import { dequantize } from '../src/quant/quantize.js';
import {
  addBatch, createHessian, gptqQuantize, type GPTQResult,
} from '../src/quant/gptq/index.js';
import {
  decodeGPTQLinear, encodeGPTQLinear, exportGPTQCheckpoint, loadGPTQCheckpoint, parseQuantizeConfig, readGPTQLinear,
  OPT_GPTQ_MODULES, type GPTQQuantizeConfig,
} from '../src/quant/gptq/autogptq.js';
import { expectLowbit } from './helpers.js';

/** AutoGPTQ's pack loop over one column of codes (values 0..2^bits−1), returning the uint32 words. */
function packColumnLiteral(codes: number[], bits: number): number[] {
  const n = codes.length, rows = (n / 32) * bits;
  const q = new Array<number>(rows).fill(0);
  let i = 0, row = 0;
  while (row < rows) {
    if (bits !== 3) {
      for (let j = i; j < i + 32 / bits; j++) q[row] = (q[row]! | (codes[j]! << (bits * (j - i)))) >>> 0;
      i += 32 / bits;
      row += 1;
    } else {
      for (let j = i; j < i + 10; j++) q[row] = (q[row]! | (codes[j]! << (3 * (j - i)))) >>> 0;
      i += 10;
      q[row] = (q[row]! | (codes[i]! << 30)) >>> 0;
      row += 1;
      q[row] = (q[row]! | ((codes[i]! >> 2) & 1)) >>> 0;
      i += 1;
      for (let j = i; j < i + 10; j++) q[row] = (q[row]! | (codes[j]! << (3 * (j - i) + 1))) >>> 0;
      i += 10;
      q[row] = (q[row]! | (codes[i]! << 31)) >>> 0;
      row += 1;
      q[row] = (q[row]! | ((codes[i]! >> 1) & 0x3)) >>> 0;
      i += 1;
      for (let j = i; j < i + 10; j++) q[row] = (q[row]! | (codes[j]! << (3 * (j - i) + 2))) >>> 0;
      i += 10;
      row += 1;
    }
  }
  return q;
}

const i32 = (name: string, v: number[], shape: number[]): TensorToWrite => ({ name, dtype: 'I32', shape, bytes: new Uint8Array(Int32Array.from(v, (x) => x | 0).buffer) });
const f16 = (name: string, v: number[], shape: number[]): TensorToWrite => ({ name, dtype: 'F16', shape, bytes: new Uint8Array(Uint16Array.from(v, f32ToF16Bits).buffer) });
const bitsToF32 = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0]!;
/** x rounded to fp16 (as a number). */
const half = (x: number) => bitsToF32(f16BitsToF32Bits(f32ToF16Bits(x)));

let be: Backend;
beforeAll(async () => { be = await createBackend('simd'); });

describe('hand-built checkpoint layers (packing derived from the documented loops)', () => {
  it('4-bit: word 0 of column 0 holds inputs 0..7 in its nibbles, low nibble first', () => {
    // codes of output 0 are 0, 1, …, 7 for inputs 0..7: the documented shift gives 0x76543210
    expect(packColumnLiteral([0, 1, 2, 3, 4, 5, 6, 7, ...new Array(24).fill(0)], 4)[0]).toBe(0x76543210);
    // 3-bit: code 10 = 0b101 straddles words 0 and 1 (low two bits at 30..31, bit 2 at bit 0 of word 1)
    const w3 = packColumnLiteral([...new Array(10).fill(0), 5, ...new Array(21).fill(0)], 3);
    expect(w3).toEqual([0x40000000, 0x1, 0x0]);
  });

  for (const bits of [2, 3, 4, 8] as const) {
    for (const [label, fmt, descAct] of [['gptq, g_idx = i // 32', 'gptq', false], ['gptq_v2, desc_act g_idx', 'gptq_v2', true]] as const) {
      it(`${bits}-bit ${label}: decoded weight = scales[g_idx[i], o] · (q[o, i] − zero[g_idx[i], o])`, () => {
        const I = 64, O = 32, gs = 32, nG = 2, maxq = 2 ** bits - 1;
        const rng = mulberry32(bits * 7 + (descAct ? 1 : 0));
        const q = Array.from({ length: O }, () => Array.from({ length: I }, () => Math.floor(rng() * (maxq + 1))));
        const zero = Array.from({ length: nG }, () => Array.from({ length: O }, () => 1 + Math.floor(rng() * maxq)));
        const scales = Array.from({ length: nG * O }, () => half(0.001 + rng() * 0.01));
        // desc_act: g_idx is the group of each input's position in some permutation (here: reversed pairs)
        const gIdx = Array.from({ length: I }, (_, i) => (descAct ? (i % 2 === 0 ? 1 : 0) : Math.floor(i / gs)));
        const qweight = new Array<number>((I / 32) * bits * O).fill(0);
        for (let o = 0; o < O; o++) packColumnLiteral(q[o]!, bits).forEach((wd, r) => { qweight[r * O + o] = wd; });
        const qzeros = new Array<number>(nG * (O / 32) * bits).fill(0);
        for (let g = 0; g < nG; g++) {
          packColumnLiteral(zero[g]!.map((z) => (fmt === 'gptq' ? z - 1 : z)), bits).forEach((wd, c) => { qzeros[g * (O / 32) * bits + c] = wd; });
        }
        const p = 'model.decoder.layers.0.fc1';
        const file = writeSafetensors([
          i32(`${p}.qweight`, qweight, [(I / 32) * bits, O]), i32(`${p}.qzeros`, qzeros, [nG, (O / 32) * bits]),
          f16(`${p}.scales`, scales, [nG, O]), i32(`${p}.g_idx`, gIdx, [I]),
        ]);
        const cfg = parseQuantizeConfig(JSON.stringify({ bits, group_size: gs, desc_act: descAct, sym: false, checkpoint_format: fmt }));
        const tq = decodeGPTQLinear(readGPTQLinear(readSafetensors(file).tensors, p, cfg), cfg, p, be.kernels);
        expect(tq.scheme.granularity.kind).toBe(descAct ? 'perRowCluster' : 'perGroup');
        const got = dequantize(tq, { kernels: be.kernels }).data as Float32Array;
        for (let o = 0; o < O; o++) {
          for (let i = 0; i < I; i++) {
            const g = gIdx[i]!;
            const want = Math.fround(scales[g * O + o]! * (q[o]![i]! - zero[g]![o]!));
            expect(got[o * I + i]).toBe(want);
          }
        }
      });
    }
  }
});

/** GPTQ results for every linear of a model, from random calibration Hessians (weights copied out of the heap first: views detach when it grows). */
function quantizeAll(model: ReturnType<typeof randomOPT>, bits: number, actOrder: boolean, groupSize?: number): Map<string, GPTQResult> {
  const out = new Map<string, GPTQResult>();
  const rng = mulberry32(bits);
  for (let l = 0; l < model.config.nLayers; l++) {
    const lw = model.weights.layers[l]!;
    const mods: Array<[string, Float32Array, number, number]> = [
      ['self_attn.q_proj', lw.wq.data.slice(), lw.wq.shape[0]!, lw.wq.shape[1]!], ['self_attn.k_proj', lw.wk.data.slice(), lw.wk.shape[0]!, lw.wk.shape[1]!],
      ['self_attn.v_proj', lw.wv.data.slice(), lw.wv.shape[0]!, lw.wv.shape[1]!], ['self_attn.out_proj', lw.wo.data.slice(), lw.wo.shape[0]!, lw.wo.shape[1]!],
      ['fc1', lw.w1.data.slice(), lw.w1.shape[0]!, lw.w1.shape[1]!], ['fc2', lw.w2.data.slice(), lw.w2.shape[0]!, lw.w2.shape[1]!],
    ];
    for (const [m, w, rows, cols] of mods) {
      const h = createHessian(cols);
      const x = Float32Array.from({ length: 64 * cols }, () => rng() - 0.5 + (rng() < 0.05 ? 3 : 0));
      addBatch(h, be.kernels, x, 64, 1);
      const opts = { bits, actOrder, kernels: be.kernels, name: `layers.${l}.${m}`, ...(groupSize ? { groupSize } : {}) };
      out.set(`layers.${l}.${m}`, gptqQuantize(w, rows, cols, h, opts));
    }
  }
  return out;
}

describe('lowbit exporter → loader round trip (tiny OPT, every linear layer)', () => {
  for (const bits of [2, 3, 4, 8]) {
    for (const actOrder of [false, true]) {
      for (const fmt of ['gptq', 'gptq_v2'] as const) {
        it(`${bits}-bit, act-order ${actOrder}, groups 32, ${fmt}`, () => {
          const model = randomOPT({ config: 'tiny', seed: 1, backend: be });
          const res = quantizeAll(model, bits, actOrder, 32);
          let hasZero0 = false;
          for (const r of res.values()) if (r.zero.some((z) => z === 0)) hasZero0 = true;
          expect(hasZero0).toBe(false); // else the classic format cannot hold it (tested below)
          const ex = exportGPTQCheckpoint(model, res, { format: fmt, kernels: be.kernels });
          const file = writeSafetensors(ex.tensors, { format: 'pt' });
          const loaded = loadGPTQCheckpoint(configJson(), JSON.stringify(ex.quantizeConfig), file, { backend: be, execution: 'dequantized' });
          expect(loaded.quantizeConfig.bits).toBe(bits);
          expect(loaded.quantizeConfig.descAct).toBe(actOrder);
          expect(loaded.layers.size).toBe(6 * model.config.nLayers);
          for (const [key, r] of res) {
            const q = loaded.layers.get(key)!;
            // codes and zeros survive exactly; scales are rounded to fp16: loaded = fp16(s) · (q − z)
            const got = dequantize(q, { kernels: be.kernels }).data as Float32Array;
            for (let i = 0; i < got.length; i++) {
              const o = Math.floor(i / r.cols), c = i % r.cols, slot = o * r.nGroups + r.gIdx[c]!;
              const want = Math.fround(half(r.scale[slot]!) * Math.round(r.dequantized[i]! / r.scale[slot]!));
              expect(got[i]).toBe(want);
            }
            const [l, ...m] = key.split('.').slice(1);
            const lw = loaded.model!.weights.layers[Number(l)]!;
            const field = ({ 'self_attn.q_proj': 'wq', 'self_attn.k_proj': 'wk', 'self_attn.v_proj': 'wv', 'self_attn.out_proj': 'wo', fc1: 'w1', fc2: 'w2' } as const)[m.join('.') as (typeof OPT_GPTQ_MODULES)[number]];
            expect(Array.from(lw[field].data)).toEqual(Array.from(got));
          }
          loaded.model!.dispose();
          model.dispose();
        });
      }
    }
  }
});

function configJson(): Record<string, unknown> {
  return { activation_function: 'relu', bos_token_id: 2, eos_token_id: 2, pad_token_id: 1, enable_bias: true, layer_norm_elementwise_affine: true, model_type: 'opt',
    vocab_size: 512, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, ffn_dim: 256, max_position_embeddings: 128, word_embed_proj_dim: 64, do_layer_norm_before: true };
}

describe('interop bad input', () => {
  const cfg: GPTQQuantizeConfig = parseQuantizeConfig({ bits: 4, group_size: 32, desc_act: false, sym: true });
  const layer = (over: Partial<Record<string, TensorToWrite>>) => {
    const p = 'model.decoder.layers.0.fc1';
    const base: Record<string, TensorToWrite> = {
      qweight: i32(`${p}.qweight`, new Array(8 * 32).fill(0), [8, 32]), qzeros: i32(`${p}.qzeros`, new Array(2 * 4).fill(0x77777777), [2, 4]),
      scales: f16(`${p}.scales`, new Array(64).fill(0.01), [2, 32]), g_idx: i32(`${p}.g_idx`, Array.from({ length: 64 }, (_, i) => i >> 5), [64]),
      ...over,
    };
    return readSafetensors(writeSafetensors(Object.values(base))).tensors;
  };
  const p = 'model.decoder.layers.0.fc1';
  it('a well-formed layer reads', () => { expect(readGPTQLinear(layer({}), p, cfg).inFeatures).toBe(64); });
  it('E_SHAPE for a g_idx whose length is not the input count', () => {
    expectLowbit(() => readGPTQLinear(layer({ g_idx: i32(`${p}.g_idx`, new Array(63).fill(0), [63]) }), p, cfg), 'E_SHAPE', 'g_idx', '[64]');
  });
  it('E_SHAPE for a qzeros shape that contradicts the bits', () => {
    expectLowbit(() => readGPTQLinear(layer({ qzeros: i32(`${p}.qzeros`, new Array(2 * 3).fill(0), [2, 3]) }), p, cfg), 'E_SHAPE', 'qzeros', 'contradicts 4 bits', '[2, 4]');
  });
  it('E_FORMAT for a classic-format zero that wrapped (stored 2^bits − 1)', () => {
    const c = parseQuantizeConfig({ bits: 4, group_size: 32, sym: false });
    const t = readGPTQLinear(layer({ qzeros: i32(`${p}.qzeros`, new Array(8).fill(-1), [2, 4]) }), p, c);
    expectLowbit(() => decodeGPTQLinear(t, c, p, be.kernels), 'E_FORMAT', 'wrapped');
  });
  it('E_CONFIG / E_UNSUPPORTED for a bad quantize_config', () => {
    expectLowbit(() => parseQuantizeConfig({ bits: 5 }), 'E_CONFIG', 'bits');
    expectLowbit(() => parseQuantizeConfig({ bits: 4, checkpoint_format: 'marlin' }), 'E_UNSUPPORTED', 'marlin');
  });
  it('E_RANGE exporting a zero point of 0 in the classic format; gptq_v2 stores it', () => {
    const h = createHessian(32);
    for (let i = 0; i < 32; i++) h.h[i * 33] = 1;
    const w = Float32Array.from({ length: 32 * 32 }, (_, i) => (i % 7) * 0.01); // all ≥ 0: zero = 0
    const r = gptqQuantize(w, 32, 32, h, { bits: 4, kernels: be.kernels });
    expectLowbit(() => encodeGPTQLinear(r, 'gptq', 'l0', be.kernels), 'E_RANGE', 'gptq_v2');
    const t = encodeGPTQLinear(r, 'gptq_v2', 'l0', be.kernels);
    expect(t.qzeros.every((v) => v === 0)).toBe(true);
  });
});
