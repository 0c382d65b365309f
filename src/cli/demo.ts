// `npm run demo`: the main job, RPTQ end to end on this machine, with nothing downloaded.
// 1. Build an OPT-125m-shaped model (exact HF shapes, seeded random weights, outlier LayerNorm channels as real OPT
//    has: no real OPT weights can be fetched here) in WASM memory, and tokenize the shipped WikiText-2 excerpt.
// 2. RPTQ W4A4KV (arXiv 2304.01089): calibrate layer by layer on WikiText-2, cluster channels by (min, max), fold the
//    reorder into LayerNorm and the linears, quantize weights to 4 bits per (row × input cluster) and the KV cache to
//    4 bits per cluster.
// 3. Save it as safetensors (packed tensors + recipe metadata), reload the file, check the logits are bit-equal.
// 4. Next-token KL against the float model on held-out WikiText-2 text, next to per-tensor quantization at the same
//    bits (RPTQ's claim), and the KV cache's bytes per token against the estimator.
// 5. Generate text with the reloaded quantized model and the float one.
// 6. Decode speed at context 128 (ms per token, same run): FP32, W4A4KV and W4A16 (4-bit LM head, groups of 128).

import { performance } from 'node:perf_hooks';
import { readFileSync, rmSync, mkdtempSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  init, currentBackend, randomOPT, createRunState, forward, generate, Tokenizer, estimateMemory, saveQuantizedOPT, loadQuantizedOPT,
  QRunState, qforward, rptq, type OPTModel, type QuantizedOPT,
} from '../index.js';
import { weightBytes } from '../models/opt/weights.js';

const PROMPT = 'The tower is 324 metres tall,';
const CTX = 128;

const secs = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** Quantizes with a progress line (rewritten in place on a terminal). */
function quantize(model: OPTModel, recipe: rptq.Recipe, calibration: ArrayLike<number>): QuantizedOPT {
  const tty = process.stdout.isTTY === true;
  const qm = rptq.quantizeOPT(model, recipe, {
    calibration,
    onProgress: (p) => {
      if (tty) process.stdout.write(`\r   ${recipe.name}: calibrating layer ${p.layer + 1}/${p.layers}, ETA ${(p.etaMs / 1000).toFixed(0)} s   `);
    },
  });
  if (tty) process.stdout.write('\r' + ' '.repeat(60) + '\r');
  return qm;
}

/** Logits of `ids` (all positions) under a quantized model, as a copy. */
function qlogits(qm: QuantizedOPT, ids: number[]): Float32Array {
  const s = new QRunState(qm, { maxContext: ids.length });
  try { return qforward(qm, s, ids, 0, { logits: 'all' }).slice(); } finally { s.dispose(); }
}

/** Median ms of one decode step at context CTX. */
function decodeMs(step: () => void, reps: number): number {
  for (let i = 0; i < 3; i++) step();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) { const t0 = performance.now(); step(); t.push(performance.now() - t0); }
  return t.sort((a, b) => a - b)[reps >> 1]!;
}

async function main(): Promise<void> {
  const info = await init();
  console.log(`lowbit demo: backend ${info.name}${info.notes.length ? ` (${info.notes.join('; ')})` : ''}`);
  const assets = new URL('../../../assets/', import.meta.url);
  const tok = Tokenizer.fromFiles(readFileSync(new URL('opt-tokenizer/vocab.json', assets)), readFileSync(new URL('opt-tokenizer/merges.txt', assets)));
  const ids = tok.encode(readFileSync(new URL('text/wikitext2-test-excerpt.txt', assets), 'utf8'));
  const split = Math.floor(ids.length * 0.75);
  const calib = ids.slice(0, split), held = ids.slice(split);

  let t0 = performance.now();
  const model = randomOPT({ backend: currentBackend(), config: 'opt-125m', seed: 7, outliers: { count: 8 } });
  const c = model.config;
  console.log(`1. OPT-125m-shaped model (${c.nLayers} layers, dim ${c.dim}, ffn ${c.hiddenDim}, vocab ${c.vocabSize}; seeded random weights with\n` +
    `   8 outlier LayerNorm channels per layer): ${mb(weightBytes(model.weights))} f32, built in ${secs(t0)}. ` +
    `WikiText-2 excerpt: ${calib.length} calibration + ${held.length} held-out tokens.`);

  // ---- 2. RPTQ W4A4KV
  const calibration = { samples: 4, seqLen: 256, seed: 0 };
  const recipe = rptq.rptqRecipe('W4A4KV', { calibration });
  t0 = performance.now();
  const qm = quantize(model, recipe, calib);
  const L0 = qm.parts.layers[0]!;
  console.log(`2. RPTQ ${recipe.name} in ${secs(t0)}:\n` +
    `   calibrated layer by layer on ${calibration.samples} × ${calibration.seqLen} WikiText-2 tokens (each layer fed by the quantized layers before it);\n` +
    `   channels clustered by (min, max): ${recipe.clusters.r1} clusters per LayerNorm output, ${recipe.clusters.qkPerHead} per head for K and V;\n` +
    `   the reorder folded into LayerNorm and the linears (layer 0's fc1 reads ${L0.fc1.packed?.nSeg ?? 0} input clusters in place);\n` +
    `   weights ${recipe.bits.weights}-bit per (row × input cluster), KV cache ${recipe.bits.kv}-bit per cluster, run on the packed kernels.`);

  // ---- 3. save, reload, bit-equal
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-demo-'));
  let loaded: QuantizedOPT;
  try {
    const file = join(dir, `opt-125m-${recipe.name}.safetensors`);
    t0 = performance.now();
    writeFileSync(file, saveQuantizedOPT(qm));
    loaded = loadQuantizedOPT(readFileSync(file), { fileName: file });
    const probe = tok.encode(PROMPT);
    const a = qlogits(qm, probe), b = qlogits(loaded, probe);
    const equal = a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
    console.log(`3. Saved as safetensors, ${mb(statSync(file).size)} (packed weights, cluster parameters, the recipe in the metadata; this preset keeps\n` +
      `   the LM head in f32), reloaded from the file in ${secs(t0)}: logits ${equal ? 'bit-equal' : 'DIFFERENT'} on a ${probe.length}-token probe.`);
    if (!equal) throw new Error('demo: the reloaded model does not reproduce the saved one');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  qm.dispose();

  // ---- 4. accuracy against per-tensor quantization; KV bytes
  t0 = performance.now();
  const windows = Math.min(4, Math.floor(held.length / 128));
  const klR = rptq.nextTokenKL(model, loaded, held, 128, windows);
  const base = quantize(model, rptq.baselineRecipe(rptq.rptqRecipe('W4A4', { calibration }), 'tensor'), calib);
  const rptqA4 = quantize(model, rptq.rptqRecipe('W4A4', { calibration }), calib);
  const klT = rptq.nextTokenKL(model, base, held, 128, windows), klA4 = rptq.nextTokenKL(model, rptqA4, held, 128, windows);
  base.dispose(); rptqA4.dispose();
  console.log(`4. Next-token KL(float ‖ quantized) on ${windows} × 128 held-out WikiText-2 tokens (nats; top-1 agreement), ${secs(t0)}:`);
  console.log(`   ${recipe.name.padEnd(16)} ${klR.kl.toFixed(4)} (${(100 * klR.top1).toFixed(0)}%)`);
  console.log(`   W4A4, RPTQ       ${klA4.kl.toFixed(4)} (${(100 * klA4.top1).toFixed(0)}%)   per-cluster activation scales`);
  console.log(`   W4A4, per-tensor ${klT.kl.toFixed(4)} (${(100 * klT.top1).toFixed(0)}%)   one activation scale per tensor, no reorder: ${(klT.kl / klA4.kl).toFixed(1)}× RPTQ's KL`);
  const kvState = new QRunState(loaded, { maxContext: CTX + 1 });
  const kvTok = kvState.cache.bytesPerToken;
  kvState.dispose();
  const est = estimateMemory(c, recipe, { batch: 1, seqLen: CTX + 1, floatBytes: 4 });
  const fp32Kv = 2 * c.nLayers * c.dim * 4;
  console.log(`   KV cache: ${kvTok} bytes per token (estimator: ${est.detail.kvBytesPerToken}) vs ${fp32Kv} in f32 (${(fp32Kv / kvTok).toFixed(1)}× smaller).`);

  // ---- 5. generation
  console.log(`5. Greedy continuations of "${PROMPT}":`);
  for (const [name, m] of [['float', model], [recipe.name, loaded]] as const) {
    t0 = performance.now();
    const out = await generate(m, tok, PROMPT, { maxNewTokens: 12, temperature: 0 });
    console.log(`   ${name.padEnd(7)} ${JSON.stringify(out)} (${secs(t0)})`);
  }
  console.log('   (random weights, so the text is not meaningful; the point is how closely the quantized model follows the float one.)');

  // ---- 6. decode speed
  const prompt = ids.slice(0, CTX), next = [ids[CTX]!], reps = 30;
  const fs = createRunState(model, { maxContext: CTX + 1, logitRows: 1 });
  forward(model, fs, prompt, 0, { logits: 'none' });
  const fpMs = decodeMs(() => { forward(model, fs, next, CTX); }, reps);
  fs.dispose();
  const qDecode = (m: QuantizedOPT) => {
    const s = new QRunState(m, { maxContext: CTX + 1, logitRows: 1 });
    qforward(m, s, prompt, 0, { logits: 'none' });
    try { return decodeMs(() => { qforward(m, s, next, CTX); }, reps); } finally { s.dispose(); }
  };
  const kvMs = qDecode(loaded);
  loaded.dispose();
  const w16 = quantize(model, rptq.rptqRecipe('W4A16', { calibration, bits: { lmHead: 4 }, weight: { granularity: 'group', groupSize: 128 } }), calib);
  const w16Ms = qDecode(w16);
  w16.dispose();
  console.log(`6. Decode at context ${CTX}, ms per token (median of ${reps}, one thread; \`npm run bench\` has every preset, both builds, 2 threads):\n` +
    `   FP32 ${fpMs.toFixed(1)}, ${recipe.name} ${kvMs.toFixed(1)} (${(fpMs / kvMs).toFixed(2)}× faster), ` +
    `W4A16 with groups of 128 and a 4-bit LM head ${w16Ms.toFixed(1)} (${(fpMs / w16Ms).toFixed(2)}× faster).`);
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
