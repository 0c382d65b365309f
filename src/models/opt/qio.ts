// Save and load RPTQ-quantized OPT models as safetensors: packed codes (U8), f32 scales, u8 zero points, i32 segment
// offsets and cluster maps, with the recipe, config and versions in `__metadata__` (DESIGN.md "Model and file formats").
//
// Tensor names (l = layer index, P = q | k | v | o | fc1 | fc2):
//   tok_emb, pos_emb, project_in, project_out, final_ln.{weight,bias}     F32 as in the float model
//   lm_head.{qweight,scales,zeros,offsets} when bits.lmHead < 16; lm_head.weight when float and untied
//   layers.l.ln{1,2}.{weight,bias}                                        F32, permuted by R1 / R4 (reorder-LayerNorm)
//   layers.l.map.{r1..r5}.{perm,offsets}                                  I32 cluster maps (when recipe.reorder)
//   layers.l.P.{qweight,scales,zeros,offsets} | layers.l.P.weight, layers.l.P.bias
//   layers.l.act.{r1,q,k,attn_out,r4,r5}.{scales,zeros,offsets}           static per-segment activation ranges
//   layers.l.kv.{k,v}.{scales,zeros,offsets}                              KV cache ranges (K: R2 segments, V: R3)
// qweight is [rows, packedRowBytes(format(bits), cols)]; scales/zeros have rows × segments slots (row-major), segments
// per the recipe's weight grid: width / group ('group'), the input's clusters ('rowCluster') or 1 ('row').
// The loader derives every expected name, dtype and shape from the metadata's config and recipe and refuses a file
// whose tensors differ (E_FORMAT), a newer format version (E_VERSION), or a file that is not a quantized model: it
// never falls back to float.

import { LowbitError, fmtShape } from '../../errors.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../../io/safetensors.js';
import type { RawDtype, RawTensor } from '../../io/tensor.js';
import { formatForBits, packedRowBytes } from '../../quant/formats.js';
import { validateClusterMap } from '../../quant/rptq/cluster-map.js';
import { checkWeightGrid, recipeFromJSON, recipeToJSON, type ActClass, type Recipe } from '../../quant/rptq/recipe.js';
import type { QuantizedTensor } from '../../quant/types.js';
import { currentBackend, type Backend } from '../../runtime.js';
import { configFromHF, configToHF, type OPTConfig } from './config.js';
import { actSlots, clusterCounts, weightSegments } from './memory.js';
import { QuantizedOPT, actQuant, fuseQKV, heapF32, makeQLinear, type ActQuant, type Disposable, type Execution, type QLayer, type QLinear } from './quantized.js';
import type { F32 } from './weights.js';

export const QUANTIZED_FORMAT = 'lowbit-opt-quantized';
/**
 * 3: the recipe has `kvFloat` (a 16-bit KV cache in f32 or bf16 at run time; no tensor changes).
 * 2: the recipe has `weight.groupSize` and may use the 'group' weight grid (linears with rows × width/group slots);
 *    still read (the recipe gets kvFloat 'f32', the cache it ran with).
 * 1: no groupSize; still read (the recipe gets the default groupSize, unused by its 'row' / 'rowCluster' grid).
 */
export const QUANTIZED_FORMAT_VERSION = 3;
export const LOWBIT_VERSION = '0.1.0';

const LINEARS = ['q', 'k', 'v', 'o', 'fc1', 'fc2'] as const;
type LinName = (typeof LINEARS)[number];
const ACT_NAMES: Record<'r1' | 'q' | 'k' | 'attnOut' | 'r4' | 'r5', string> = { r1: 'r1', q: 'q', k: 'k', attnOut: 'attn_out', r4: 'r4', r5: 'r5' };

interface Spec { dtype: RawDtype; shape: number[] }

function linDims(c: OPTConfig, p: LinName): [number, number] {
  return p === 'fc1' ? [c.hiddenDim, c.dim] : p === 'fc2' ? [c.dim, c.hiddenDim] : [c.dim, c.dim];
}

/** Every tensor a quantized file of (config, recipe, tied) holds, with dtype and shape. */
export function quantizedSpecs(c: OPTConfig, r: Recipe, tied: boolean): Map<string, Spec> {
  const s = new Map<string, Spec>();
  const d = c.dim, h = c.hiddenDim, pd = c.wordEmbedProjDim, V = c.vocabSize, k = clusterCounts(c, r), b = r.bits;
  const f32 = (name: string, shape: number[]) => s.set(name, { dtype: 'F32', shape });
  const packed = (p: string, rows: number, cols: number, bits: number, seg: number) => {
    s.set(`${p}.qweight`, { dtype: 'U8', shape: [rows, packedRowBytes(formatForBits(bits), cols)] });
    s.set(`${p}.scales`, { dtype: 'F32', shape: [rows * seg] });
    s.set(`${p}.zeros`, { dtype: 'U8', shape: [rows * seg] });
    s.set(`${p}.offsets`, { dtype: 'I32', shape: [seg + 1] });
  };
  const act = (p: string, slots: number) => {
    s.set(`${p}.scales`, { dtype: 'F32', shape: [slots] });
    s.set(`${p}.zeros`, { dtype: 'U8', shape: [slots] });
    s.set(`${p}.offsets`, { dtype: 'I32', shape: [slots + 1] });
  };
  f32('tok_emb', [V, pd]);
  f32('pos_emb', [c.maxPos + 2, d]);
  if (pd !== d) { f32('project_in', [d, pd]); f32('project_out', [pd, d]); }
  if (c.finalLN && c.lnAffine) { f32('final_ln.weight', [d]); f32('final_ln.bias', [d]); }
  if (b.lmHead < 16) {
    const g = Math.min(r.weight.lmHeadGroup, pd);
    packed('lm_head', V, pd, b.lmHead, pd / g);
  } else if (!tied) f32('lm_head.weight', [V, pd]);
  const clIn: Record<LinName, number> = { q: k.r1, k: k.r1, v: k.r1, o: k.attnOut, fc1: k.r4, fc2: k.r5 };
  for (let l = 0; l < c.nLayers; l++) {
    const P = `layers.${l}`;
    if (c.lnAffine) for (const n of ['ln1', 'ln2']) { f32(`${P}.${n}.weight`, [d]); f32(`${P}.${n}.bias`, [d]); }
    if (r.reorder) {
      for (const [m, n, kk] of [['r1', d, k.r1], ['r2', d, k.qk], ['r3', d, k.attnOut], ['r4', d, k.r4], ['r5', h, k.r5]] as const) {
        s.set(`${P}.map.${m}.perm`, { dtype: 'I32', shape: [n] });
        s.set(`${P}.map.${m}.offsets`, { dtype: 'I32', shape: [kk + 1] });
      }
    }
    for (const p of LINEARS) {
      const [o, i] = linDims(c, p);
      if (b.weights < 16) packed(`${P}.${p}`, o, i, b.weights, weightSegments(r, i, clIn[p]));
      else f32(`${P}.${p}.weight`, [o, i]);
      if (c.enableBias) f32(`${P}.${p}.bias`, [o]);
    }
    const a = (cls: ActClass, name: string, n: number, kk: number) => act(`${P}.act.${name}`, actSlots(r, cls, n, kk));
    if (b.r1 < 16) a('r1', 'r1', d, k.r1);
    if (b.qk < 16) a('qk', 'q', d, k.qk);
    if (b.qk < 16 && b.kv >= 16) a('qk', 'k', d, k.qk);
    if (b.attnOut < 16) a('attnOut', 'attn_out', d, k.attnOut);
    if (b.r4 < 16) a('r4', 'r4', d, k.r4);
    if (b.r5 < 16) a('r5', 'r5', h, k.r5);
    if (b.kv < 16) { a('kv', 'kv.k', d, k.qk); a('kv', 'kv.v', d, k.attnOut); }
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Save
// ---------------------------------------------------------------------------------------------

const bytesOf = (a: Float32Array | Int32Array | Uint8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Serialises a quantized OPT model to safetensors bytes (packed tensors + metadata). */
export function saveQuantizedOPT(m: QuantizedOPT): Uint8Array {
  if (m.isDisposed) throw new LowbitError('E_ARG', 'saveQuantizedOPT: the model was disposed');
  const c = m.config, r = m.recipe, p = m.parts, out: TensorToWrite[] = [];
  const f32 = (name: string, t: Float32Array, shape: number[]) => out.push({ name, dtype: 'F32', shape, bytes: bytesOf(t.slice()) });
  const i32 = (name: string, t: Int32Array) => out.push({ name, dtype: 'I32', shape: [t.length], bytes: bytesOf(t.slice()) });
  const u8 = (name: string, t: Uint8Array, shape: number[]) => out.push({ name, dtype: 'U8', shape, bytes: t.slice() });
  const packed = (name: string, q: QuantizedTensor) => {
    u8(`${name}.qweight`, q.qs, [q.rows, q.qs.length / q.rows]);
    f32(`${name}.scales`, q.scale, [q.scale.length]);
    u8(`${name}.zeros`, q.zero, [q.zero.length]);
    i32(`${name}.offsets`, q.offsets);
  };
  const act = (name: string, a: ActQuant | null) => {
    if (!a) return;
    f32(`${name}.scales`, a.scale, [a.scale.length]);
    u8(`${name}.zeros`, a.zero, [a.zero.length]);
    i32(`${name}.offsets`, a.offsets);
  };
  const lin = (name: string, l: QLinear) => {
    if (l.q) packed(name, l.q); else f32(`${name}.weight`, l.w!.data, [l.outDim, l.inDim]);
    if (l.b) f32(`${name}.bias`, l.b.data, [l.outDim]);
  };
  f32('tok_emb', p.tokEmb.data, [...p.tokEmb.shape]);
  f32('pos_emb', p.posEmb.data, [...p.posEmb.shape]);
  if (p.projectIn) f32('project_in', p.projectIn.data, [...p.projectIn.shape]);
  if (p.projectOut) f32('project_out', p.projectOut.data, [...p.projectOut.shape]);
  if (p.finalLnW) f32('final_ln.weight', p.finalLnW.data, [c.dim]);
  if (p.finalLnB) f32('final_ln.bias', p.finalLnB.data, [c.dim]);
  if (p.lmHead.q) packed('lm_head', p.lmHead.q);
  else if (!p.tied) f32('lm_head.weight', p.lmHead.w!.data, [c.vocabSize, c.wordEmbedProjDim]);
  p.layers.forEach((L, l) => {
    const P = `layers.${l}`;
    if (L.ln1W) f32(`${P}.ln1.weight`, L.ln1W.data, [c.dim]);
    if (L.ln1B) f32(`${P}.ln1.bias`, L.ln1B.data, [c.dim]);
    if (L.ln2W) f32(`${P}.ln2.weight`, L.ln2W.data, [c.dim]);
    if (L.ln2B) f32(`${P}.ln2.bias`, L.ln2B.data, [c.dim]);
    for (const k of ['r1', 'r2', 'r3', 'r4', 'r5'] as const) {
      const mp = L.maps[k];
      if (mp) { i32(`${P}.map.${k}.perm`, mp.perm); i32(`${P}.map.${k}.offsets`, mp.offsets); }
    }
    for (const n of LINEARS) lin(`${P}.${n}`, L[n]);
    for (const [k, n] of Object.entries(ACT_NAMES)) act(`${P}.act.${n}`, L.act[k as keyof typeof ACT_NAMES]);
    if (L.kv) { act(`${P}.act.kv.k`, L.kv.k); act(`${P}.act.kv.v`, L.kv.v); }
  });
  // never write a file the loader would refuse: every tensor must have the shape (config, recipe) implies
  const specs = quantizedSpecs(c, r, p.tied);
  for (const t of out) {
    const sp = specs.get(t.name);
    if (!sp || sp.dtype !== t.dtype || sp.shape.length !== t.shape.length || sp.shape.some((v, i) => v !== t.shape[i])) {
      throw new LowbitError('E_UNSUPPORTED', `saveQuantizedOPT: tensor '${t.name}' is ${t.dtype} ${fmtShape(t.shape)}, but the recipe ` +
        `${r.name} (weight grid ${r.weight.granularity}) implies ${sp ? `${sp.dtype} ${fmtShape(sp.shape)}` : 'no such tensor'}: this layout ` +
        '(e.g. GPTQ act-order with groups) has no lowbit file form; export GPTQ models with exportGPTQCheckpoint', { key: t.name });
    }
  }
  return writeSafetensors(out, {
    format: QUANTIZED_FORMAT,
    format_version: String(QUANTIZED_FORMAT_VERSION),
    lowbit_version: LOWBIT_VERSION,
    recipe: recipeToJSON(r),
    config: JSON.stringify(configToHF(c)),
    tied: String(p.tied),
  });
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

export interface LoadQuantizedOptions {
  backend?: Backend;
  fileName?: string;
  /** How quantized linears run (default 'integer'; see quantized.ts `Execution`). */
  execution?: Execution;
}

function fail(file: string, msg: string, details: Record<string, unknown> = {}): never {
  throw new LowbitError('E_FORMAT', `${file}: ${msg}`, { file, ...details });
}

/**
 * Loads a model saved by `saveQuantizedOPT`. Errors: E_FORMAT for a file that is not a lowbit quantized OPT (e.g. a
 * float checkpoint: never loaded as float), metadata that does not match the tensors (a missing, extra or misshapen
 * tensor, naming it), bad segment offsets or cluster maps; E_VERSION for a newer format version.
 */
export function loadQuantizedOPT(bytes: Uint8Array | ArrayBuffer, opts: LoadQuantizedOptions = {}): QuantizedOPT {
  const file = opts.fileName ?? 'quantized model';
  const st = readSafetensors(bytes, { fileName: file });
  const md = st.metadata;
  if (md['format'] !== QUANTIZED_FORMAT) {
    fail(file, `metadata.format is ${JSON.stringify(md['format'])}, expected "${QUANTIZED_FORMAT}" (not a lowbit quantized OPT file; a float checkpoint loads with loadOPT)`);
  }
  const ver = Number(md['format_version']);
  if (!Number.isSafeInteger(ver) || ver < 1) fail(file, `metadata.format_version ${JSON.stringify(md['format_version'])} is not a positive integer`);
  if (ver > QUANTIZED_FORMAT_VERSION) {
    throw new LowbitError('E_VERSION', `${file}: written by format version ${ver} (lowbit ${md['lowbit_version'] ?? '?'}); this lowbit (${LOWBIT_VERSION}) reads up to version ${QUANTIZED_FORMAT_VERSION}`, { file, version: ver });
  }
  if (md['recipe'] === undefined || md['config'] === undefined) fail(file, 'metadata has no recipe or config');
  let recipe: Recipe, c: OPTConfig;
  try {
    // version 3 writes kvFloat; older files ran an f32 cache, which recipeFromJSON fills in for them
    recipe = recipeFromJSON(md['recipe']!, { legacyKvFloat: ver < 3 });
    c = configFromHF(md['config']!);
    checkWeightGrid(c, recipe);
  } catch (e) {
    fail(file, `metadata recipe/config is invalid: ${(e as Error).message}`);
  }
  if (!c.preLN) fail(file, 'the config is post-LN (do_layer_norm_before = false), which quantized OPT files cannot hold');
  const tied = md['tied'] === 'true';
  const specs = quantizedSpecs(c, recipe, tied);
  for (const [name, sp] of specs) {
    const t = st.tensors.get(name);
    if (!t) {
      const floatHint = name.endsWith('.qweight') && st.tensors.has(name.replace(/\.qweight$/, '.weight')) ? ' (a float .weight is present: the metadata and the tensors disagree; not loading it as float)' : '';
      fail(file, `metadata (recipe ${recipe.name}) needs tensor '${name}' ${sp.dtype} ${fmtShape(sp.shape)}, which is missing${floatHint}`, { key: name });
    }
    if (t.dtype !== sp.dtype || t.shape.length !== sp.shape.length || t.shape.some((v, i) => v !== sp.shape[i])) {
      fail(file, `tensor '${name}' is ${t.dtype} ${fmtShape(t.shape)}, the metadata (recipe ${recipe.name}) implies ${sp.dtype} ${fmtShape(sp.shape)}`, { key: name });
    }
  }
  for (const name of st.tensors.keys()) if (!specs.has(name)) fail(file, `unexpected tensor '${name}': the metadata (recipe ${recipe.name}) does not describe it`, { key: name });

  const be = opts.backend ?? currentBackend();
  const owned: Disposable[] = [], execution = opts.execution ?? 'integer';
  try {
    const raw = (n: string): RawTensor => st.tensors.get(n)!;
    const aligned = (n: string) => { const b = raw(n).bytes; return b.byteOffset % 4 === 0 ? b : b.slice(); };
    const F = (n: string) => { const b = aligned(n); return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4); };
    const I = (n: string) => { const b = aligned(n); return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice(); };
    const U = (n: string) => raw(n).bytes.slice();
    const has = (n: string) => st.tensors.has(n);
    const heap = (n: string) => heapF32(be, F(n), raw(n).shape, owned);
    const offsetsOf = (n: string, cols: number) => {
      const o = I(n);
      if (o[0] !== 0 || o[o.length - 1] !== cols) fail(file, `'${n}' must run from 0 to ${cols}`, { key: n });
      for (let i = 0; i + 1 < o.length; i++) if (!(o[i + 1]! > o[i]!)) fail(file, `'${n}' must strictly increase (entry ${i + 1})`, { key: n });
      return o;
    };
    const scalesOf = (n: string) => {
      const s = F(n).slice();
      for (let i = 0; i < s.length; i++) if (!(s[i]! > 0) || s[i] === Infinity) fail(file, `'${n}'[${i}] = ${s[i]} is not a finite positive scale`, { key: n });
      return s;
    };
    const zerosOf = (n: string, bits: number) => {
      const z = U(n);
      for (let i = 0; i < z.length; i++) if (z[i]! > 2 ** bits - 1) fail(file, `'${n}'[${i}] = ${z[i]} is above the largest ${bits}-bit code`, { key: n });
      return z;
    };
    const qlin = (P: string, outDim: number, inDim: number, bits: number, bias: boolean): QLinear => {
      const b = bias ? heap(`${P}.bias`) : null;
      if (bits >= 16) return { outDim, inDim, w: heap(`${P}.weight`), b, q: null, packed: null };
      const offsets = offsetsOf(`${P}.offsets`, inDim);
      const format = formatForBits(bits);
      const q: QuantizedTensor = {
        format, shape: [outDim, inDim], qs: U(`${P}.qweight`), scale: scalesOf(`${P}.scales`), zero: zerosOf(`${P}.zeros`, bits),
        rows: outDim, cols: inDim, offsets, rowPeriod: outDim, perm: null,
        scheme: { bits: bits as QuantizedTensor['scheme']['bits'], symmetric: false, granularity: { kind: 'perRowCluster', clusters: { perm: Int32Array.from({ length: inDim }, (_, i) => i), offsets } } },
      };
      return makeQLinear(be, q, b, execution, owned);
    };
    const act = (P: string, bits: number, cols: number): ActQuant => actQuant(bits, offsetsOf(`${P}.offsets`, cols), scalesOf(`${P}.scales`), zerosOf(`${P}.zeros`, bits));
    const b = recipe.bits, d = c.dim, h = c.hiddenDim;
    const layers: QLayer[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const P = `layers.${l}`;
      const maps: QLayer['maps'] = {};
      if (recipe.reorder) {
        for (const [k, n] of [['r1', d], ['r2', d], ['r3', d], ['r4', d], ['r5', h]] as const) {
          const mp = { perm: I(`${P}.map.${k}.perm`), offsets: I(`${P}.map.${k}.offsets`) };
          try { validateClusterMap(mp, n, `${P}.map.${k}`); } catch (e) { fail(file, (e as Error).message, { key: `${P}.map.${k}` }); }
          maps[k] = mp;
        }
      }
      const ln = (n: string) => (c.lnAffine ? heap(`${P}.${n}`) : null);
      const lin = (n: LinName) => { const [o, i] = linDims(c, n); return qlin(`${P}.${n}`, o, i, b.weights, c.enableBias); };
      const layer: QLayer = {
        ln1W: ln('ln1.weight'), ln1B: ln('ln1.bias'), ln2W: ln('ln2.weight'), ln2B: ln('ln2.bias'),
        ln1Perm: maps.r1 ? maps.r1.perm : null, ln2Perm: maps.r4 ? maps.r4.perm : null,
        q: lin('q'), k: lin('k'), v: lin('v'), o: lin('o'), fc1: lin('fc1'), fc2: lin('fc2'),
        act: {
          r1: b.r1 < 16 ? act(`${P}.act.r1`, b.r1, d) : null,
          q: b.qk < 16 ? act(`${P}.act.q`, b.qk, d) : null,
          k: has(`${P}.act.k.scales`) ? act(`${P}.act.k`, b.qk, d) : null,
          attnOut: b.attnOut < 16 ? act(`${P}.act.attn_out`, b.attnOut, d) : null,
          r4: b.r4 < 16 ? act(`${P}.act.r4`, b.r4, d) : null,
          r5: b.r5 < 16 ? act(`${P}.act.r5`, b.r5, h) : null,
        },
        kv: b.kv < 16 ? { k: act(`${P}.act.kv.k`, b.kv, d), v: act(`${P}.act.kv.v`, b.kv, d) } : null,
        maps,
      };
      if (execution === 'integer') fuseQKV(be, layer, owned);
      layers.push(layer);
    }
    const tokEmb = heap('tok_emb');
    const lmHead: QLinear = b.lmHead < 16
      ? qlin('lm_head', c.vocabSize, c.wordEmbedProjDim, b.lmHead, false)
      : { outDim: c.vocabSize, inDim: c.wordEmbedProjDim, w: tied ? tokEmb : heap('lm_head.weight'), b: null, q: null, packed: null };
    const opt = (n: string): F32 | null => (has(n) ? heap(n) : null);
    return new QuantizedOPT(c, recipe, {
      tokEmb, posEmb: heap('pos_emb'), projectIn: opt('project_in'), projectOut: opt('project_out'),
      finalLnW: opt('final_ln.weight'), finalLnB: opt('final_ln.bias'), lmHead, tied, layers,
    }, be, owned, execution);
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }
}
