// `npm run bench:peers`: lowbit against onnxruntime-web's WASM backend, in one process, same shapes,
// same quantization. Graphs are built in JS (./graphs.ts, ./onnx.ts, ./protobuf.ts); ORT loads from
// node_modules (./ort.ts). Prints one table (median ms, GFLOP/s, GB/s of weight traffic, relative
// error against the dequantize-then-f32 reference, lowbit/peer speed ratio) and writes
// bench/results/peers-latest.json (peers-quick.json with --quick).
// Flags: --quick (1 timed iteration per row), --filter <substring of "shape impl">, --threads 1,2,
// --rounds R (default 2: ORT and lowbit alternate R times, each row keeps its fastest round).

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createBackend, type Backend } from '../../src/runtime.js';
import { wasmSupported } from '../../src/wasm/loader.js';
import { Tensor } from '../../src/tensor.js';
import { codesOf, quantize, type QuantizedTensor } from '../../src/quant/index.js';
import { dequantRef, f32Ref, relError } from './accuracy.js';
import { matmulF32Model, matmulIntegerModel, matmulNBitsModel, packNBits4 } from './graphs.js';
import { loadOrt, OrtHost } from './ort.js';
import { timeIt } from './timing.js';
import { lowbitF32, lowbitI8, lowbitQ4, NotAvailable, type Runner } from './lowbit.js';
import { seededFloats as rand } from '../data.js';

interface Shape { name: string; M: number; N: number; K: number }

const SHAPES: Shape[] = [
  { name: 'gemv 1x4096·4096x4096', M: 1, N: 4096, K: 4096 },
  { name: 'gemv 1x768·768x3072', M: 1, N: 3072, K: 768 },
  { name: 'gemm 128x768·768x768', M: 128, N: 768, K: 768 },
  { name: 'gemm 128x4096·4096x4096', M: 128, N: 4096, K: 4096 },
];

/** Reference rows checked per output (all of a GEMV, the first few of a GEMM: f64 JS is slow). */
const REF_ROWS = 4;

type Kind = 'f32' | 'int8' | 'q4b32' | 'q4b128';
const KIND_LABEL: Record<Kind, { ort: string; lowbit: string }> = {
  f32: { ort: 'ort MatMul f32', lowbit: 'lowbit sgemmNT f32' },
  int8: { ort: 'ort DynQuantLinear+MatMulInteger', lowbit: 'lowbit int8' },
  q4b32: { ort: 'ort MatMulNBits 4b blk32', lowbit: 'lowbit 4-bit blk32' },
  q4b128: { ort: 'ort MatMulNBits 4b blk128', lowbit: 'lowbit 4-bit blk128' },
};

interface Row {
  shape: string;
  impl: string;
  threads: number;
  medianMs: number | null;
  gflops: number | null;
  weightGBps: number | null;
  weightBytes: number | null;
  relErr: number | null;
  /** lowbit rows: peer median / lowbit median (> 1: lowbit is faster). */
  ratio: number | null;
  peer: string | null;
  samples: number;
  note: string | null;
}

interface Weights {
  w: Float32Array;
  q8: QuantizedTensor;
  q4: Record<32 | 128, QuantizedTensor>;
}

function quantizeWeights(N: number, K: number, w: Float32Array, kernels: Backend['kernels']): Weights {
  const t = Tensor.fromArray(w, [N, K]);
  const q8 = quantize(t, { bits: 8, symmetric: true, granularity: { kind: 'perChannel', axis: 0 } }, undefined, { kernels });
  const q4 = {
    32: quantize(t, { bits: 4, symmetric: false, granularity: { kind: 'perGroup', groupSize: 32 } }, undefined, { kernels }),
    128: quantize(t, { bits: 4, symmetric: false, granularity: { kind: 'perGroup', groupSize: 128 } }, undefined, { kernels }),
  };
  return { w, q8, q4 };
}

/** The f64 reference for the first `rows` rows of Y = A · W'ᵀ, W' = the weights each kind computes with. */
function reference(kind: Kind, s: Shape, a: Float32Array, W: Weights, kernels: Backend['kernels']): Float64Array {
  const rows = Math.min(s.M, REF_ROWS);
  const a0 = a.subarray(0, rows * s.K);
  if (kind === 'f32') return f32Ref(rows, s.N, s.K, a0, W.w);
  const q = kind === 'int8' ? W.q8 : W.q4[kind === 'q4b32' ? 32 : 128];
  const bs = kind === 'int8' ? s.K : kind === 'q4b32' ? 32 : 128;
  return dequantRef(rows, s.N, s.K, bs, a0, codesOf(q, { kernels }), q.scale, q.zero);
}

/** The ORT graph for `kind` with the same codes/scales/zero points as lowbit's weights. */
function ortModel(kind: Kind, s: Shape, W: Weights, kernels: Backend['kernels']): { model: Uint8Array; weightBytes: number } {
  const { M, N, K } = s;
  if (kind === 'f32') return { model: matmulF32Model(M, N, K, W.w), weightBytes: 4 * N * K };
  if (kind === 'int8') {
    const codes = codesOf(W.q8, { kernels });
    const i8 = new Int8Array(N * K);
    for (let i = 0; i < i8.length; i++) i8[i] = codes[i]! - W.q8.zero[Math.floor(i / K)]!;
    return { model: matmulIntegerModel(M, N, K, i8, W.q8.scale), weightBytes: N * K + 4 * N };
  }
  const bs = kind === 'q4b32' ? 32 : 128;
  const q = W.q4[bs];
  const nb = packNBits4(N, K, bs, codesOf(q, { kernels }), q.scale, q.zero);
  return { model: matmulNBitsModel(M, N, K, bs, nb), weightBytes: nb.b.byteLength + nb.scales.byteLength + nb.zeroPoints.byteLength };
}

function lowbitRunner(kind: Kind, b: Backend, s: Shape, a: Float32Array, W: Weights): Runner {
  const { M, N, K } = s;
  if (kind === 'f32') return lowbitF32(b, M, N, K, a, W.w);
  if (kind === 'int8') return lowbitI8(b, M, N, K, a, W.q8);
  return lowbitQ4(b, M, N, K, a, W.q4[kind === 'q4b32' ? 32 : 128]);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const fi = args.indexOf('--filter');
  const filter = fi >= 0 ? args[fi + 1] ?? '' : '';
  const ti = args.indexOf('--threads');
  const ri = args.indexOf('--rounds');
  const rounds = quick ? 1 : Math.max(1, Number(ri >= 0 ? args[ri + 1] : 2) || 2);
  const threadList = (ti >= 0 ? args[ti + 1] ?? '1,2' : '1,2').split(',').map(Number).filter((t) => t >= 1);

  const ortVersion = (await loadOrt(1)).env.versions.web; // (not initialized here: the hosts run ORT)
  const hosts: Record<number, OrtHost> = {};
  for (const t of threadList) hosts[t] = new OrtHost(t);
  const name = wasmSupported('relaxed') ? 'relaxed' : 'simd';
  const lowbit: Record<number, Backend> = {};
  const notes: string[] = [];
  for (const t of threadList) {
    const b = await createBackend(name, t > 1 ? { threads: t } : {});
    if (b.info.threads !== t) notes.push(`lowbit ${name} asked for ${t} threads, got ${b.info.threads}: ${b.info.notes.join('; ')}`);
    lowbit[t] = b;
  }
  const kernels = lowbit[threadList[0]!]!.kernels;
  const env = {
    date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length,
    ort: ortVersion, lowbitBackend: name, quick,
  };
  console.log(`# lowbit (${name}) vs onnxruntime-web ${env.ort} WASM (one ORT instance per thread count, each in a worker thread), ${env.cpu}, ${env.cores} cores, Node ${env.node}${quick ? ', --quick' : ''}`);

  const rows: Row[] = [];
  const kinds: Kind[] = ['f32', 'int8', 'q4b32', 'q4b128'];
  for (const s of SHAPES) {
    const wanted = kinds.filter((k) => [KIND_LABEL[k].ort, KIND_LABEL[k].lowbit].some((l) => `${s.name} ${l}`.includes(filter)));
    if (!wanted.length) continue;
    const a = rand(s.M * s.K, 1), w = rand(s.N * s.K, 2);
    const W = quantizeWeights(s.N, s.K, w, kernels);
    const flops = 2 * s.M * s.N * s.K;
    for (const kind of wanted) {
      const ref = reference(kind, s, a, W, kernels);
      const refLen = ref.length;
      let model: { model: Uint8Array; weightBytes: number } | null = null;
      for (const t of threadList) {
        const base = { shape: s.name, threads: t, samples: 0 };
        const measure = async (impl: string, make: () => Runner | Promise<Runner>): Promise<Row> => {
          let r: Runner | null = null;
          try {
            // let the other side's threads (ORT's pool, lowbit's spinning workers) go idle first
            await new Promise((res) => setTimeout(res, quick ? 0 : 100));
            r = await make();
            const m = r.timing ?? await timeIt(r.fn, quick);
            const err = relError(r.output().subarray(0, refLen), ref);
            return {
              ...base, impl, medianMs: m.median, samples: m.samples, gflops: flops / m.median / 1e6,
              weightGBps: r.weightBytes / m.median / 1e6, weightBytes: r.weightBytes, relErr: err, ratio: null, peer: null, note: null,
            };
          } catch (e) {
            if (!(e instanceof NotAvailable)) throw e;
            return { ...base, impl, medianMs: null, gflops: null, weightGBps: null, weightBytes: null, relErr: null, ratio: null, peer: null, note: e.message };
          } finally {
            await r?.release?.();
          }
        };
        const lbl = KIND_LABEL[kind];
        let peer: Row | null = null, mine: Row | null = null;
        // rounds alternate ORT and lowbit; each row keeps its fastest round's median (the machine is shared)
        for (let round = 0; round < rounds; round++) {
          const p = `${s.name} ${lbl.ort}`.includes(filter)
            ? await measure(lbl.ort, async () => {
              model ??= ortModel(kind, s, W, kernels);
              const { weightBytes } = model;
              const m = await hosts[t]!.measure(model.model, s.M, s.K, a, quick, refLen);
              if (m.numThreads !== t) notes.push(`ORT host for ${t} threads runs ${m.numThreads}`);
              return { weightBytes, fn: () => {}, output: () => m.output, timing: { median: m.median, samples: m.samples } };
            }) : null;
          const l = `${s.name} ${lbl.lowbit}`.includes(filter) ? await measure(lbl.lowbit, () => lowbitRunner(kind, lowbit[t]!, s, a, W)) : null;
          peer = faster(peer, p);
          mine = faster(mine, l);
          if (l?.note) break;
        }
        if (peer && mine) {
          mine.peer = `${peer.impl} ${t}T`;
          if (peer.medianMs !== null && mine.medianMs !== null) mine.ratio = peer.medianMs / mine.medianMs;
        }
        for (const r of [peer, mine]) {
          if (!r) continue;
          rows.push(r);
          printRow(r, rows.length === 1);
        }
      }
    }
  }
  for (const r of rows) if (r.note && !notes.includes(r.note)) notes.push(r.note);
  console.log('\n' + table(rows));
  for (const n of notes) console.log(`note: ${n}`);
  for (const b of Object.values(lowbit)) await b.dispose();
  for (const h of Object.values(hosts)) await h.terminate();
  const out = { ...env, threads: threadList, rounds, notes, rows };
  const dir = new URL('../../../bench/results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  writeFileSync(new URL(quick ? 'peers-quick.json' : 'peers-latest.json', dir), JSON.stringify(out, null, 2) + '\n');
}

/** The row with the smaller median (rounds of the same subject). */
function faster(a: Row | null, b: Row | null): Row | null {
  if (!a || a.medianMs === null) return b ?? a;
  if (!b || b.medianMs === null) return a;
  return b.medianMs < a.medianMs ? b : a;
}

const HEAD = ['shape', 'impl', 'threads', 'median ms', 'GFLOP/s', 'GB/s weights', 'rel err', 'lowbit/peer'];

function cells(r: Row): string[] {
  return [
    r.shape, r.impl, String(r.threads),
    r.medianMs === null ? 'n/a' : r.medianMs.toFixed(3),
    r.gflops === null ? '' : r.gflops.toPrecision(3),
    r.weightGBps === null ? '' : r.weightGBps.toPrecision(3),
    r.relErr === null ? '' : r.relErr.toExponential(1),
    r.ratio === null ? (r.note ? 'TODO (see notes)' : '') : `${r.ratio.toFixed(2)}x`,
  ];
}

function printRow(r: Row, first: boolean): void {
  if (first) console.log(HEAD.join(' | '));
  console.log(cells(r).join(' | '));
}

/** Markdown table; the ratio is peer ms / lowbit ms at the same thread count (> 1: lowbit faster). */
function table(rows: Row[]): string {
  const body = rows.map(cells);
  const w = HEAD.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (c: string[]) => '| ' + c.map((x, i) => (i < 2 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join(' | ') + ' |';
  return [line(HEAD), '|' + w.map((n, i) => (i < 2 ? '-'.repeat(n + 2) : '-'.repeat(n + 1) + ':')).join('|') + '|', ...body.map(line)].join('\n');
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
