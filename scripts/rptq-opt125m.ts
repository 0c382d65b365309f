// RPTQ end to end on an OPT-125m-shaped model (seeded random weights with injected outlier LayerNorm channels: no real
// OPT weights can be fetched here). Every preset runs in its own child process (so peak RSS is per preset): calibrate
// on WikiText-2 text, quantize, save as safetensors, reload in a fresh process (bit-equal logits), KL of next-token
// distributions against float on held-out WikiText-2 text, greedy generation, KV bytes per token vs the estimator.
//
//   npx tsc -p tsconfig.json && node dist/scripts/rptq-opt125m.js [--samples 8] [--seqlen 256] [--windows 4]
//     [--evallen 128] [--presets W4A16,W4A8,...] [--nInit 3]
//   A preset name may end in a weight-grid suffix: W4A16-rowCluster, W4A16-row, W4A16-g32, then '-gptq' for GPTQ
//   weights on that grid (W4A16-gptq: per row × input cluster), then '-kvbf16' for a bf16 KV cache (recipe.kvFloat).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { createBackend, type Backend } from '../src/runtime.js';
import { Tokenizer } from '../src/tokenizer/index.js';
import { estimateMemory, randomOPT, type OPTModel } from '../src/models/opt/index.js';
import { QRunState, qforward, qgenerateGreedy, type QuantizedOPT } from '../src/models/opt/quantized.js';
import { loadQuantizedOPT, saveQuantizedOPT } from '../src/models/opt/qio.js';
import {
  baselineRecipe, customRecipe, nextTokenKL, quantizeOPT, rptqRecipe, type Recipe, type RecipePresetName,
} from '../src/quant/rptq/index.js';

const DATA = '/work/shared/data';
const SELF = fileURLToPath(import.meta.url);
const PROBE = [2, 133, 2197, 16, 10, 1992, 9, 5, 4838, 8, 25485, 4];

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}

function fnv(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

function probeHash(qm: QuantizedOPT): string {
  const s = new QRunState(qm, { maxContext: PROBE.length });
  const out = qforward(qm, s, PROBE, 0, { logits: 'all' }).slice();
  s.dispose();
  return fnv(new Uint8Array(out.buffer));
}

interface Row {
  name: string; bits: string; quantMs: number; fileMB: number; reloadEqual: boolean; kl: number; top1: number;
  kvPerTok: number; kvEst: number; peakRssMB: number; wasmMB: number; gen: string; totalMs: number;
}

function recipeFor(given: string, samples: number, seqLen: number, nInit: number): Recipe {
  // a final '-kvbf16' stores the float KV cache as bf16 (recipe.kvFloat; e.g. W4A16-kvbf16, W4A16-g128-kvbf16)
  const bf16 = given.endsWith('-kvbf16'), named = bf16 ? given.slice(0, -'-kvbf16'.length) : given;
  // a final '-gptq' quantizes the weights with GPTQ on the recipe's grid (e.g. W4A16-gptq, W4A16-g128-gptq)
  const gptq = named.endsWith('-gptq'), full = gptq ? named.slice(0, -'-gptq'.length) : named;
  // a weight-grid suffix overrides the preset's grid: '-rowCluster', '-row', '-g<groupSize>' (e.g. W4A16-g32)
  const gm = /^(.*)-(rowCluster|row|g(\d+))$/.exec(full);
  const name = gm ? gm[1]! : full;
  const weight = gm ? (gm[3] ? { granularity: 'group' as const, groupSize: Number(gm[3]) } : { granularity: gm[2] as 'rowCluster' | 'row' }) : undefined;
  const o = { calibration: { samples, seqLen, seed: 0 }, kmeans: { nInit, seed: 0 }, ...(weight ? { weight } : {}) };
  const m = /^(W\d+A\d+(?:KV)?)(?:-per(Tensor|Channel))?$/.exec(name);
  const w16 = /^W16A(\d)(?:-per(Tensor|Channel))?$/.exec(name);
  let r: Recipe;
  if (name === 'FP') r = rptqRecipe('FP', o);
  else if (w16) r = customRecipe(`W16A${w16[1]}`, 16, Number(w16[1]) as 3 | 4, Number(w16[1]) as 3 | 4, o);
  else if (m) r = rptqRecipe(m[1] as RecipePresetName, o);
  else if (name === 'W4A16-lm8') r = rptqRecipe('W4A16', { ...o, bits: { lmHead: 8 }, name: 'W4A16-lm8' });
  else throw new Error(`unknown preset ${name}`);
  const kind = (w16?.[2] ?? m?.[2])?.toLowerCase();
  const out = kind ? baselineRecipe(r, kind as 'tensor' | 'channel') : r;
  if (gm || gptq || bf16) out.name = given;
  if (gptq) out.weight.method = 'gptq';
  if (bf16) out.kvFloat = 'bf16';
  return out;
}

async function buildModel(be: Backend): Promise<OPTModel> {
  return randomOPT({ backend: be, config: 'opt-125m', seed: 1, outliers: { count: 8, scale: [20, 60] } });
}

async function child(name: string, dir: string): Promise<void> {
  const t0 = performance.now();
  const samples = Number(arg('samples', '8')), seqLen = Number(arg('seqlen', '256'));
  const windows = Number(arg('windows', '4')), evalLen = Number(arg('evallen', '128')), nInit = Number(arg('nInit', '3'));
  const be = await createBackend('simd');
  const model = await buildModel(be);
  const calib = Int32Array.from(JSON.parse(readFileSync(join(dir, 'calib.json'), 'utf8')) as number[]);
  const evalIds = Int32Array.from(JSON.parse(readFileSync(join(dir, 'eval.json'), 'utf8')) as number[]);
  const recipe = recipeFor(name, samples, seqLen, nInit);
  const tq = performance.now();
  let lastLog = 0;
  const qm = quantizeOPT(model, recipe, {
    calibration: calib,
    onProgress: (p) => {
      const now = performance.now();
      if (now - lastLog > 15000) { lastLog = now; process.stderr.write(`  ${name}: layer ${p.layer + 1}/${p.layers}, ${p.done}/${p.total}, ETA ${(p.etaMs / 1000).toFixed(0)} s\n`); }
    },
  });
  const quantMs = performance.now() - tq;
  const bytes = saveQuantizedOPT(qm);
  const file = join(dir, `${name}.safetensors`);
  writeFileSync(file, bytes);
  const hash = probeHash(qm);
  const reloaded = execFileSync(process.execPath, [SELF, '--reload', file], { encoding: 'utf8' }).trim();
  const kl = nextTokenKL(model, qm, evalIds, evalLen, windows);
  const gen = qgenerateGreedy(qm, PROBE.slice(0, 6), 8);
  const s = new QRunState(qm, { maxContext: 64, logitRows: 1 });
  const kvPerTok = s.cache.bytesPerToken;
  s.dispose();
  const est = estimateMemory(model.config, recipe, { batch: 1, seqLen: 64, floatBytes: 4 });
  const b = recipe.bits;
  const row: Row = {
    name: recipe.name, bits: `W${b.weights} R1:${b.r1} qk:${b.qk} ao:${b.attnOut} R4:${b.r4} R5:${b.r5} kv:${b.kv} p:${b.attnProbs} lm:${b.lmHead}`,
    quantMs, fileMB: bytes.byteLength / 1e6, reloadEqual: reloaded === hash, kl: kl.kl, top1: kl.top1,
    kvPerTok, kvEst: est.detail.kvBytesPerToken, peakRssMB: process.resourceUsage().maxRSS / 1024,
    wasmMB: (be.heap?.stats().memoryBytes ?? 0) / 1e6, gen: gen.join(' '), totalMs: performance.now() - t0,
  };
  rmSync(file);
  process.stdout.write(JSON.stringify(row) + '\n');
}

async function reload(file: string): Promise<void> {
  const be = await createBackend('simd');
  const qm = loadQuantizedOPT(readFileSync(file), { backend: be, fileName: file });
  process.stdout.write(probeHash(qm) + '\n');
}

async function main(): Promise<void> {
  if (process.argv.includes('--reload')) return reload(arg('reload', ''));
  if (process.argv.includes('--child')) return child(arg('child', ''), arg('dir', ''));
  const dir = mkdtempSync(join(tmpdir(), 'rptq125m-'));
  const t0 = performance.now();
  const tok = Tokenizer.fromFiles(readFileSync(`${DATA}/tokenizers/opt/vocab.json`), readFileSync(`${DATA}/tokenizers/opt/merges.txt`));
  const text = readFileSync(`${DATA}/corpora/wikitext2_raw_test.txt`, 'utf8');
  // calibration from the first 60%, evaluation from the last 40% (disjoint)
  const cut = Math.floor(text.length * 0.6);
  const calib = tok.encode(text.slice(0, Math.min(cut, 400_000)));
  const evalIds = tok.encode(text.slice(cut, cut + 60_000));
  writeFileSync(join(dir, 'calib.json'), JSON.stringify(calib));
  writeFileSync(join(dir, 'eval.json'), JSON.stringify(evalIds));
  console.log(`WikiText-2 test: ${calib.length} calibration tokens, ${evalIds.length} evaluation tokens (tokenized in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  const presets = arg('presets', 'FP,W4A16,W4A16-lm8,W4A8,W4A4,W4A4KV,W4A3KV,W3A3KV,W4A4-perTensor,W4A4-perChannel,W16A4,W16A4-perTensor,W16A3,W16A3-perTensor').split(',');
  const pass = process.argv.filter((a, i) => i >= 2 && !a.startsWith('--presets') && process.argv[i - 1] !== '--presets');
  const rows: Row[] = [];
  for (const p of presets) {
    const out = execFileSync(process.execPath, [SELF, '--child', p, '--dir', dir, ...pass], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
    const row = JSON.parse(out.trim().split('\n').at(-1)!) as Row;
    rows.push(row);
    console.log(`${row.name}: done in ${(row.totalMs / 1000).toFixed(1)} s`);
  }
  console.log(`\nsamples ${arg('samples', '8')} × ${arg('seqlen', '256')} tokens; KL over ${arg('windows', '4')} windows × ${arg('evallen', '128')} tokens; KL = mean KL(p_float ‖ p_quant) in nats`);
  console.log('| preset | bits | quantize s | file MB | reload bit-equal | KL | top-1 agree | KV B/token (est.) | peak RSS MB | WASM MB | total s |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.name} | ${r.bits} | ${(r.quantMs / 1000).toFixed(1)} | ${r.fileMB.toFixed(1)} | ${r.reloadEqual ? 'yes' : 'NO'} | ${r.kl.toFixed(4)} | ${(100 * r.top1).toFixed(1)}% | ${r.kvPerTok} (${r.kvEst}) | ${r.peakRssMB.toFixed(0)} | ${r.wasmMB.toFixed(0)} | ${(r.totalMs / 1000).toFixed(1)} |`);
  }
  console.log('\ngenerations (greedy, 8 tokens after the first 6 probe tokens):');
  for (const r of rows) console.log(`  ${r.name}: ${r.gen}`);
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => { console.error(e); process.exit(1); });
