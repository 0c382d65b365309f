// Quantized OPT files: save → load gives bit-equal logits (in process and in a fresh process); bad files are refused.

import { describe, expect, it, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBackend, type Backend } from '../src/runtime.js';
import { randomOPT, makeRandomCheckpoint, estimateMemory, type OPTModel } from '../src/models/opt/index.js';
import { QRunState, qforward, type QuantizedOPT } from '../src/models/opt/quantized.js';
import { saveQuantizedOPT, loadQuantizedOPT, QUANTIZED_FORMAT_VERSION } from '../src/models/opt/qio.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { quantizeOPT, rptqRecipe } from '../src/quant/rptq/index.js';
import { mulberry32 } from '../src/models/opt/sample.js';

const calib = (() => { const r = mulberry32(7); return Int32Array.from({ length: 1024 }, () => 4 + Math.floor(r() * 500)); })();
const probe = [2, 17, 99, 300, 45, 8, 411, 7, 7, 120];

function logitsOf(qm: QuantizedOPT): Float32Array {
  const s = new QRunState(qm, { maxContext: 16 });
  const out = qforward(qm, s, probe, 0, { logits: 'all' }).slice();
  s.dispose();
  return out;
}

function rewrite(bytes: Uint8Array, edit: (t: TensorToWrite[], md: Record<string, string>) => void): Uint8Array {
  const st = readSafetensors(bytes);
  const t: TensorToWrite[] = [...st.tensors.values()].map((x) => ({ name: x.name, dtype: x.dtype, shape: x.shape, bytes: x.bytes }));
  const md = { ...st.metadata };
  edit(t, md);
  return writeSafetensors(t, md);
}

describe('quantized OPT save/load', () => {
  let be: Backend, model: OPTModel;
  const saved: Record<string, { bytes: Uint8Array; logits: Float32Array }> = {};
  beforeAll(async () => {
    be = await createBackend('simd');
    model = randomOPT({ backend: be, config: 'tiny', seed: 3, outliers: { count: 4 } });
    for (const name of ['W4A4', 'W3A3KV', 'W4A16'] as const) {
      // W4A4: per (row × input cluster), the presets' grid; W3A3KV and W4A16: the 'group' option (groups of 128, of 32)
      const recipe = rptqRecipe(name, {
        calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 }, bits: { lmHead: name === 'W4A4' ? 4 : 8 },
        ...(name === 'W4A4' ? {} : { weight: { granularity: 'group' as const, groupSize: name === 'W4A16' ? 32 : 128 } }),
      });
      const qm = quantizeOPT(model, recipe, { calibration: calib });
      saved[name] = { bytes: saveQuantizedOPT(qm), logits: logitsOf(qm) };
      qm.dispose();
    }
  });

  it('reloads with bit-equal logits; the recipe is in the metadata; codes are packed', () => {
    for (const [name, s] of Object.entries(saved)) {
      const st = readSafetensors(s.bytes);
      expect(st.metadata['format']).toBe('lowbit-opt-quantized');
      expect(JSON.parse(st.metadata['recipe']!).name).toBe(name);
      const bits = name === 'W3A3KV' ? 3 : 4;
      // q_proj 64×64 codes in 64 rows of packed bytes: u4 32 B, u3 one 128-code block 48 B
      expect(st.tensors.get('layers.0.q.qweight')!.shape).toEqual([64, bits === 4 ? 32 : 48]);
      // (scale, zero) slots per row of q (64 inputs) and fc2 (256 inputs): W4A4 32 R1 and 32 R5 clusters; W3A3KV groups
      // of 128: 1 (q is narrower than a group) and 2; W4A16 groups of 32: 2 and 8
      const slots = { W4A4: [32, 32], W3A3KV: [1, 2], W4A16: [2, 8] }[name as 'W4A4']!;
      expect(st.tensors.get('layers.0.q.scales')!.shape).toEqual([64 * slots[0]!]);
      expect(st.tensors.get('layers.0.fc2.scales')!.shape).toEqual([64 * slots[1]!]);
      expect(JSON.parse(st.metadata['recipe']!).weight.granularity).toBe(name === 'W4A4' ? 'rowCluster' : 'group');
      const qm = loadQuantizedOPT(s.bytes, { backend: be });
      expect(Buffer.from(logitsOf(qm).buffer).equals(Buffer.from(s.logits.buffer))).toBe(true);
      expect(qm.recipe.weight).toEqual(JSON.parse(st.metadata['recipe']!).weight);
      qm.dispose();
    }
  });

  it('a file of format version 1 (no weight.groupSize in its recipe) still loads to bit-equal logits', () => {
    const v1 = rewrite(saved['W4A4']!.bytes, (_t, md) => {
      const r = JSON.parse(md['recipe']!);
      delete r.weight.groupSize;
      md['recipe'] = JSON.stringify(r);
      md['format_version'] = '1';
    });
    const qm = loadQuantizedOPT(v1, { backend: be });
    expect(qm.recipe.weight).toEqual({ method: 'rtn', granularity: 'rowCluster', groupSize: 128, lmHeadGroup: 128 });
    expect(Buffer.from(logitsOf(qm).buffer).equals(Buffer.from(saved['W4A4']!.logits.buffer))).toBe(true);
    qm.dispose();
  });

  it("a bf16 KV cache (kvFloat 'bf16') is in the metadata and reloads to bit-equal logits; a version 3 file without kvFloat is refused", () => {
    const recipe = rptqRecipe('W4A16', { calibration: { samples: 4, seqLen: 64 }, kmeans: { nInit: 2 }, kvFloat: 'bf16' });
    const qm = quantizeOPT(model, recipe, { calibration: calib });
    const bytes = saveQuantizedOPT(qm), want = logitsOf(qm);
    qm.dispose();
    const md = readSafetensors(bytes).metadata;
    expect(md['format_version']).toBe(String(QUANTIZED_FORMAT_VERSION));
    expect(JSON.parse(md['recipe']!).kvFloat).toBe('bf16');
    const back = loadQuantizedOPT(bytes, { backend: be });
    expect(back.recipe.kvFloat).toBe('bf16');
    expect(Buffer.from(logitsOf(back).buffer).equals(Buffer.from(want.buffer))).toBe(true);
    back.dispose();
    const noKv = rewrite(bytes, (_t, m) => { const r = JSON.parse(m['recipe']!); delete r.kvFloat; m['recipe'] = JSON.stringify(r); });
    expect(() => loadQuantizedOPT(noKv, { backend: be })).toThrow(/E_FORMAT.*recipe\.kvFloat is missing/);
    // format version 2 files had no kvFloat and ran an f32 cache
    const v2 = rewrite(saved['W4A16']!.bytes, (_t, m) => { const r = JSON.parse(m['recipe']!); delete r.kvFloat; m['recipe'] = JSON.stringify(r); m['format_version'] = '2'; });
    const old = loadQuantizedOPT(v2, { backend: be });
    expect(old.recipe.kvFloat).toBe('f32');
    expect(Buffer.from(logitsOf(old).buffer).equals(Buffer.from(saved['W4A16']!.logits.buffer))).toBe(true);
    old.dispose();
  });

  it("refuses 'group' metadata that contradicts the tensors", () => {
    const b = saved['W4A16']!.bytes;
    const edit = (f: (w: Record<string, unknown>) => void) => rewrite(b, (_t, md) => { const r = JSON.parse(md['recipe']!); f(r.weight); md['recipe'] = JSON.stringify(r); });
    // groups of 64 imply 1 slot per row of q (64 inputs); the file has 2
    expect(() => loadQuantizedOPT(edit((w) => { w['groupSize'] = 64; }), { backend: be })).toThrow(/E_FORMAT.*layers\.0\.q\.scales.*F32 \[128\].*implies F32 \[64\]/);
    expect(() => loadQuantizedOPT(edit((w) => { w['granularity'] = 'rowCluster'; }), { backend: be })).toThrow(/E_FORMAT.*layers\.0\.q\.scales/);
    expect(() => loadQuantizedOPT(edit((w) => { delete w['groupSize']; }), { backend: be })).toThrow(/E_FORMAT.*weight\.groupSize is missing/);
    expect(() => loadQuantizedOPT(edit((w) => { w['groupSize'] = 96; }), { backend: be })).toThrow(/E_FORMAT.*groupSize 96 does not divide the 256 input columns of layers\.\*\.fc2/);
  });

  it('the tensor bytes of a saved file equal estimateMemory(...).weights with floatBytes 4', () => {
    for (const name of ['W4A4', 'W3A3KV', 'W4A16'] as const) {
      const st = readSafetensors(saved[name]!.bytes);
      let bytes = 0;
      for (const t of st.tensors.values()) bytes += t.bytes.byteLength;
      const recipe = JSON.parse(st.metadata['recipe']!);
      const e = estimateMemory(model.config, recipe, { batch: 1, seqLen: 1, floatBytes: 4 });
      expect(bytes).toBe(e.weights + e.detail.kvParams);
    }
  });

  it('a fresh process reloads the file to bit-equal logits', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lowbit-q-'));
    const file = join(dir, 'w4a4.safetensors');
    writeFileSync(file, saved['W4A4']!.bytes);
    const script = `
      import { createBackend } from './src/runtime.ts';
      import { loadQuantizedOPT } from './src/models/opt/qio.ts';
      import { QRunState, qforward } from './src/models/opt/quantized.ts';
      import { readFileSync, writeFileSync } from 'node:fs';
      const be = await createBackend('simd');
      const qm = loadQuantizedOPT(readFileSync(${JSON.stringify(file)}), { backend: be });
      const s = new QRunState(qm, { maxContext: 16 });
      const out = qforward(qm, s, ${JSON.stringify(probe)}, 0, { logits: 'all' }).slice();
      writeFileSync(${JSON.stringify(file + '.logits')}, new Uint8Array(out.buffer));
    `;
    writeFileSync(join(dir, 'child.test.ts'), `import { it } from 'vitest';\nit('reload', async () => {${script.replace(/import (.*) from '\.\/src\/(.*)';/g, "const $1 = await import('" + process.cwd() + "/src/$2');").replace(/import (.*) from 'node:fs';/, "const $1 = await import('node:fs');")}});\n`);
    execFileSync('npx', ['vitest', 'run', '--root', dir, '--dir', dir, join(dir, 'child.test.ts')], { stdio: 'pipe', cwd: process.cwd() });
    const got = readFileSync(file + '.logits');
    expect(Buffer.from(got).equals(Buffer.from(saved['W4A4']!.logits.buffer))).toBe(true);
  }, 120_000);

  it('refuses metadata that does not match the tensors, newer versions, and float checkpoints', () => {
    const b = saved['W4A4']!.bytes;
    // recipe says W3 but the codes are 4-bit
    const wrongBits = rewrite(b, (_t, md) => { const r = JSON.parse(md['recipe']!); r.bits.weights = 3; md['recipe'] = JSON.stringify(r); });
    expect(() => loadQuantizedOPT(wrongBits, { backend: be })).toThrow(/E_FORMAT.*layers\.0\.q\.qweight/);
    // a packed tensor replaced by a float one: never loaded as float
    const asFloat = rewrite(b, (t) => {
      const i = t.findIndex((x) => x.name === 'layers.1.fc2.qweight');
      t.splice(i, 1, { name: 'layers.1.fc2.weight', dtype: 'F32', shape: [64, 256], bytes: new Uint8Array(64 * 256 * 4) });
    });
    expect(() => loadQuantizedOPT(asFloat, { backend: be })).toThrow(/E_FORMAT.*layers\.1\.fc2\.qweight.*missing.*not loading it as float/);
    const extra = rewrite(b, (t) => { t.push({ name: 'junk', dtype: 'F32', shape: [1], bytes: new Uint8Array(4) }); });
    expect(() => loadQuantizedOPT(extra, { backend: be })).toThrow(/E_FORMAT.*unexpected tensor 'junk'/);
    const newer = rewrite(b, (_t, md) => { md['format_version'] = String(QUANTIZED_FORMAT_VERSION + 1); });
    expect(() => loadQuantizedOPT(newer, { backend: be })).toThrow(/E_VERSION/);
    const ck = makeRandomCheckpoint({ config: 'tiny' });
    expect(() => loadQuantizedOPT(ck.safetensors, { backend: be })).toThrow(/E_FORMAT.*not a lowbit quantized OPT/);
    const badRecipe = rewrite(b, (_t, md) => { const r = JSON.parse(md['recipe']!); r.bits.gamma = 4; md['recipe'] = JSON.stringify(r); });
    expect(() => loadQuantizedOPT(badRecipe, { backend: be })).toThrow(/E_FORMAT.*unknown tensor class 'gamma'/);
    const postLN = rewrite(b, (_t, md) => { const c = JSON.parse(md['config']!); c.do_layer_norm_before = false; md['config'] = JSON.stringify(c); });
    expect(() => loadQuantizedOPT(postLN, { backend: be })).toThrow(/E_FORMAT.*post-LN \(do_layer_norm_before = false\)/);
    const badOffsets = rewrite(b, (t) => { const x = t.find((y) => y.name === 'layers.0.act.r5.offsets')!; const o = new Int32Array(x.bytes.slice().buffer); o[1] = 0; x.bytes = new Uint8Array(o.buffer); });
    expect(() => loadQuantizedOPT(badOffsets, { backend: be })).toThrow(/E_FORMAT.*act\.r5\.offsets/);
  });
});
