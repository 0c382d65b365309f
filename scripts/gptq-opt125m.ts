// GPTQ on an OPT-125m-shaped model (seeded random weights with outlier LayerNorm channels): quantizes all
// 72 decoder linears with the CPU preset (32 × 512 calibration tokens from Tiny Shakespeare) at 4 and 3
// bits, prints progress, per-layer / total / per-2048-token-sample times, and, on a few held-out WikiText-2
// test windows, perplexity of float, GPTQ and RTN and the mean next-token KL(float ‖ quantized) with top-1
// agreement. A random model's WikiText-2 perplexity sits near the vocabulary size whatever the quantizer, and
// its changes under quantization are a fixed per-token bias, not a quality signal. So perplexity is also
// measured on text the float model itself samples (temperature 1, as LLM-QAT's data-free generation,
// arXiv 2305.17888): there log ppl(q) = H(float) + KL(float ‖ q) in expectation, so it ranks quantizers by
// the same KL, in perplexity units.
// Run: npx tsc -p tsconfig.json && node dist/scripts/gptq-opt125m.js [--threads 2] [--windows 4] [--seq 512]
//   [--bits 4,3] [--selfgen 4 (sampled sequences of --seq tokens; 0: skip)]

import { readFileSync } from 'node:fs';
import { init, currentBackend } from '../src/runtime.js';
import { randomOPT } from '../src/models/opt/random.js';
import { evaluatePerplexity } from '../src/models/opt/perplexity.js';
import { generateIds } from '../src/models/opt/generate.js';
import { Tokenizer } from '../src/tokenizer/index.js';
import { gptqQuantizeOPT, rtnQuantizeOPT, calibrationSamples, nextTokenKLOf, GPTQ_CPU_PRESET } from '../src/quant/gptq/index.js';
import type { OPTModel } from '../src/models/opt/model.js';

const data = (p: string) => new URL(`../../../shared/data/${p}`, import.meta.url);
const arg = (name: string, def: string) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1] ?? def : def; };
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const threads = Number(arg('threads', '2'));
  const info = await init({ threads });
  const backend = currentBackend();
  console.log(`backend ${info.name}, ${info.threads} thread(s)${info.notes.length ? ` (${info.notes.join('; ')})` : ''}`);
  const tok = Tokenizer.fromFiles(readFileSync(data('tokenizers/opt/vocab.json')), readFileSync(data('tokenizers/opt/merges.txt')));
  const t0 = Date.now();
  const calibIds = tok.encode(readFileSync(data('corpora/tinyshakespeare_input.txt'), 'utf8'));
  const nWin = Number(arg('windows', '4')), seq = Number(arg('seq', '512'));
  const wiki = readFileSync(data('corpora/wikitext2_raw_test.txt'), 'utf8');
  const evalIds = tok.encode(wiki.slice(0, 40_000 * Math.ceil((nWin * seq) / 8000)));
  console.log(`tokenized: ${calibIds.length} calibration tokens (Tiny Shakespeare), ${evalIds.length} WikiText-2 test tokens, ${s(Date.now() - t0)}`);
  const samples = calibrationSamples(calibIds, GPTQ_CPU_PRESET.nSamples, GPTQ_CPU_PRESET.seqLen, 0);
  const model = randomOPT({ config: 'opt-125m', seed: 7, backend, outliers: { count: 4 } });
  const ppl = async (m: OPTModel) => (await evaluatePerplexity(m, evalIds, { seqLen: seq, maxWindows: nWin })).ppl;
  const pplF = await ppl(model);
  console.log(`float perplexity (${nWin} × ${seq} WikiText-2 test tokens): ${pplF.toFixed(2)}`);
  // the float model's own text: nGen sequences of `seq` tokens (BOS + seq − 1 sampled), one window each
  const nGen = Number(arg('selfgen', '4'));
  const tg = Date.now();
  const genIds = nGen > 0
    ? generateIds(model, Array.from({ length: nGen }, () => [model.config.bosId]), { maxNewTokens: seq - 1, temperature: 1, seed: 1234, stopAtEos: false })
      .flatMap((g) => [model.config.bosId, ...g])
    : [];
  const selfPpl = async (m: OPTModel) => (await evaluatePerplexity(m, genIds, { seqLen: seq, maxWindows: nGen })).ppl;
  const selfF = nGen > 0 ? await selfPpl(model) : NaN;
  if (nGen > 0) console.log(`float model's own samples (${nGen} × ${seq} tokens, temperature 1, ${s(Date.now() - tg)}): perplexity ${selfF.toFixed(2)}`);
  const summary: string[] = [];
  for (const bits of arg('bits', '4,3').split(',').map(Number)) {
    console.log(`\n== GPTQ ${bits}-bit, per-row asymmetric, ${samples.length} × ${GPTQ_CPU_PRESET.seqLen} calibration tokens`);
    const g = await gptqQuantizeOPT(model, samples, {
      bits,
      onProgress: (p) => {
        if (p.module === 'fc2' || p.done === 1) {
          process.stdout.write(`  ${String(p.done).padStart(2)}/${p.total} layer ${p.layer} ${p.module}: elapsed ${s(p.elapsedMs)}, ETA ${s(p.etaMs)}\n`);
        }
      },
    });
    let fwd = 0, hes = 0, qnt = 0;
    for (const t of g.timings) {
      fwd += t.forwardMs; hes += t.hessianMs; qnt += t.quantizeMs;
      console.log(`  layer ${String(t.layer).padStart(2)}: forward ${s(t.forwardMs)}, Hessians ${s(t.hessianMs)}, quantize ${s(t.quantizeMs)}`);
    }
    const tokens = samples.length * GPTQ_CPU_PRESET.seqLen;
    const perSample = ((fwd + hes) / tokens) * 2048;
    console.log(`  total ${s(g.totalMs)} (forward ${s(fwd)}, Hessians ${s(hes)}, Cholesky + column loop ${s(qnt)}); `
      + `per 2048-token sample ${s(perSample)} of forward + Hessian work (the quantize part is fixed: ${s(qnt)})`);
    const pplG = await ppl(g.model);
    const selfG = nGen > 0 ? await selfPpl(g.model) : NaN;
    const klG = nextTokenKLOf(model, g.model, evalIds, seq, nWin);
    g.model.dispose();
    const r = rtnQuantizeOPT(model, { bits });
    const pplR = await ppl(r);
    const selfR = nGen > 0 ? await selfPpl(r) : NaN;
    const klR = nextTokenKLOf(model, r, evalIds, seq, nWin);
    r.dispose();
    const kl = (k: { kl: number; top1: number }) => `${k.kl.toExponential(3)} nats (top-1 agreement ${(100 * k.top1).toFixed(1)}%)`;
    console.log(`  perplexity: float ${pplF.toFixed(2)}, GPTQ ${pplG.toFixed(2)}, RTN ${pplR.toFixed(2)}`);
    if (nGen > 0) console.log(`  perplexity on the float model's samples: float ${selfF.toFixed(2)}, GPTQ ${selfG.toFixed(2)}, RTN ${selfR.toFixed(2)}`);
    console.log(`  next-token KL(float ‖ q) over ${klG.tokens} tokens: GPTQ ${kl(klG)}, RTN ${kl(klR)}`);
    summary.push(`${bits}-bit: GPTQ ${s(g.totalMs)} total, ${s(perSample)} per 2048-token sample (+ ${s(qnt)} fixed); WikiText-2 ppl float ${pplF.toFixed(2)} GPTQ ${pplG.toFixed(2)} RTN ${pplR.toFixed(2)}; `
      + `own-sample ppl float ${selfF.toFixed(2)} GPTQ ${selfG.toFixed(2)} RTN ${selfR.toFixed(2)}; `
      + `KL GPTQ ${klG.kl.toExponential(3)} RTN ${klR.kl.toExponential(3)}, top-1 GPTQ ${(100 * klG.top1).toFixed(1)}% RTN ${(100 * klR.top1).toFixed(1)}%`);
  }
  console.log(`\n${summary.join('\n')}`);
  model.dispose();
  await backend.dispose();
}

main().catch((e) => { console.error(e); process.exit(1); });
