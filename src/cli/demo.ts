// `npm run demo`: the main job, end to end on this machine, with nothing downloaded.
// 1. Build an OPT-125m-shaped model (exact HF shapes, seeded random weights, outlier LayerNorm channels
//    as real OPT has: no real OPT weights can be fetched here) and load it into WASM memory.
// 2. Quantize every linear weight to 4 bits (asymmetric, per group of 128, round-half-even RTN).
// 3. Compare the quantized model's next-token distributions with the float model's on real text
//    (the comparison model holds the dequantized 4-bit weights), and generate a continuation with both.
// 4. Time the decode-path GEMV of one layer's fc1 on the packed 4-bit codes against f32.

import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import {
  init, currentBackend, randomOPT, createRunState, forward, generate, Tokenizer, OPTModel, Tensor,
  quantize, dequantize, quantizedByteLength, packQLinear, qlinear, type OPTModel as Model, type QuantScheme,
} from '../index.js';
import { weightBytes } from '../models/opt/weights.js';

const TEXT = 'The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest structure in Paris.';

function ms(t0: number): string {
  return `${(performance.now() - t0).toFixed(0)} ms`;
}

/**
 * A copy of `model` whose linear weights went through quantize → dequantize (biases, norms, embeddings
 * stay f32): the float decoder running exactly the 4-bit model's weights.
 */
function quantizeLinears(model: Model, scheme: QuantScheme): { model: Model; packedBytes: number; floatBytes: number } {
  const heap = model.backend.heap;
  let packedBytes = 0, floatBytes = 0;
  const layers = model.weights.layers.map((l) => {
    const q = (w: Tensor<'f32'>): Tensor<'f32'> => {
      const qt = quantize(w, scheme);
      packedBytes += quantizedByteLength(qt);
      floatBytes += w.size * 4;
      return dequantize(qt).toHeap(heap!) as Tensor<'f32'>;
    };
    return { ...l, wq: q(l.wq), wk: q(l.wk), wv: q(l.wv), wo: q(l.wo), w1: q(l.w1), w2: q(l.w2) };
  });
  return { model: new OPTModel(model.config, { ...model.weights, layers }, model.backend), packedBytes, floatBytes };
}

function logSoftmax(row: Float32Array): Float64Array {
  let mx = -Infinity;
  for (const v of row) mx = Math.max(mx, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - mx);
  const lse = mx + Math.log(s);
  return Float64Array.from(row, (v) => v - lse);
}

async function main(): Promise<void> {
  const info = await init();
  console.log(`lowbit demo: backend ${info.name}${info.notes.length ? ` (${info.notes.join('; ')})` : ''}`);
  const backend = currentBackend();
  const assets = new URL('../../../assets/opt-tokenizer/', import.meta.url);
  const tok = Tokenizer.fromFiles(readFileSync(new URL('vocab.json', assets)), readFileSync(new URL('merges.txt', assets)));

  let t0 = performance.now();
  const model = randomOPT({ config: 'opt-125m', seed: 7, backend, outliers: { count: 4 } });
  const c = model.config;
  console.log(`1. OPT-125m-shaped model (${c.nLayers} layers, dim ${c.dim}, ffn ${c.hiddenDim}, vocab ${c.vocabSize}), ` +
    `seeded random weights with outlier channels: ${(weightBytes(model.weights) / 1e6).toFixed(0)} MB f32, built in ${ms(t0)}`);

  t0 = performance.now();
  const scheme: QuantScheme = { bits: 4, symmetric: false, granularity: { kind: 'perGroup', groupSize: 128 } };
  const q = quantizeLinears(model, scheme);
  console.log(`2. 72 linear weights → 4-bit, groups of 128: ${(q.floatBytes / 1e6).toFixed(0)} MB → ` +
    `${(q.packedBytes / 1e6).toFixed(1)} MB packed (${((8 * q.packedBytes) / (q.floatBytes / 4)).toFixed(2)} bits/weight incl. scales), in ${ms(t0)}`);

  const ids = tok.encode(TEXT);
  const T = ids.length;
  const run = (m: Model) => {
    const st = createRunState(m, { batch: 1, maxTokens: T, maxContext: T + 1 });
    return Float32Array.from(forward(m, st, Int32Array.from(ids), 0, { logits: 'all' }));
  };
  t0 = performance.now();
  const lf = run(model), lq = run(q.model);
  let kl = 0, agree = 0;
  for (let t = 0; t < T; t++) {
    const p = logSoftmax(lf.subarray(t * c.vocabSize, (t + 1) * c.vocabSize));
    const r = logSoftmax(lq.subarray(t * c.vocabSize, (t + 1) * c.vocabSize));
    let a = 0, am = 0, bm = 0;
    for (let i = 0; i < c.vocabSize; i++) {
      a += Math.exp(p[i]!) * (p[i]! - r[i]!);
      if (p[i]! > p[am]!) am = i;
      if (r[i]! > r[bm]!) bm = i;
    }
    kl += a / T;
    if (am === bm) agree++;
  }
  console.log(`3. ${T} tokens of text through both models (${ms(t0)}): mean KL(float ‖ 4-bit) = ${kl.toExponential(2)} nats, ` +
    `top-1 agreement ${agree}/${T}`);

  for (const [name, m] of [['float', model], ['4-bit', q.model]] as const) {
    t0 = performance.now();
    const out = await generate(m, tok, 'The tower is', { maxNewTokens: 12, temperature: 0 });
    console.log(`   ${name} greedy continuation of "The tower is" (${ms(t0)}): ${JSON.stringify(out)}`);
  }
  console.log('   (random weights, so the text is not meaningful; the point is that both models agree.)');

  const fc1 = model.weights.layers[0]!.w1;
  const packed = packQLinear(quantize(fc1, scheme));
  const x = Float32Array.from({ length: c.dim }, (_, i) => Math.sin(i));
  const xt = Tensor.fromArray(x, [1, c.dim]).toHeap(backend.heap!);
  const reps = 200;
  const timeIt = (fn: () => void) => { fn(); const t = performance.now(); for (let i = 0; i < reps; i++) fn(); return (performance.now() - t) / reps; };
  const tf = timeIt(() => { backend.kernels.sgemmNT(1, c.hiddenDim, c.dim, xt.data as Float32Array, c.dim, fc1.data, c.dim, new Float32Array(c.hiddenDim), c.hiddenDim, null); });
  const tq = timeIt(() => { qlinear(x, packed); });
  console.log(`4. fc1 GEMV (${c.dim}→${c.hiddenDim}): f32 ${(tf * 1e3).toFixed(0)} µs, packed 4-bit kernel ${(tq * 1e3).toFixed(0)} µs (${(tf / tq).toFixed(2)}×)`);
  q.model.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
