// `npm run bench`: runs every case in bench/cases/ with tinybench, prints one table (median ms,
// GFLOP/s, GB/s, ratio against a peer measured in the same run) and writes bench/results/latest.json
// (a --filter run writes filtered.json, a --quick run quick.json, so neither replaces the full table).
// Flags: --quick (1 iteration per case: CI smoke), --filter <substring of group>; anything else is a usage error.
// Token-processing rows (decode steps, prefills) also show tokens/s.

import { Bench } from 'tinybench';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createBackend, type Backend } from '../src/runtime.js';
import { wasmSupported } from '../src/wasm/loader.js';
import type { BackendName } from '../src/kernels/index.js';
import type { BenchCase, BenchContext, CaseModule } from './types.js';
import { f32Cases } from './cases/f32.js';
import { kmeansCases } from './cases/kmeans.js';
import { quantCases } from './cases/quant.js';
import { tokenizerCases } from './cases/tokenizer.js';
import { decoderCases } from './cases/decoder.js';
import { threadCases } from './cases/threads.js';
import { qmatmulCases } from './cases/qmatmul.js';

const MODULES: CaseModule[] = [f32Cases, tokenizerCases, decoderCases, quantCases, threadCases, kmeansCases, qmatmulCases, async (ctx) => (await import('./cases/rptq.js')).rptqCases(ctx)];
MODULES.push(async (ctx) => (await import('./cases/gptq.js')).gptqCases(ctx));

interface Row {
  group: string;
  impl: string;
  medianMs: number;
  gflops: number | null;
  gbps: number | null;
  tokPerSec: number | null;
  ratio: number | null;
  peer: string | null;
  samples: number;
}

const USAGE = 'usage: npm run bench [-- --quick] [-- --filter <substring of a group name>]';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const fi = args.indexOf('--filter');
  const filter = fi >= 0 ? args[fi + 1] ?? '' : '';
  // an unknown flag (even --help) must not start a 10-minute run
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--quick') continue;
    if (args[i] === '--filter' && i + 1 < args.length) { i++; continue; }
    console.error(args[i] === '--help' || args[i] === '-h' ? USAGE : `bench: unexpected argument '${args[i]}'\n${USAGE}`);
    process.exit(args[i] === '--help' || args[i] === '-h' ? 0 : 2);
  }
  const backends: Partial<Record<BackendName, Backend>> = { js: await createBackend('js') };
  backends.simd = await createBackend('simd');
  if (wasmSupported('relaxed')) backends.relaxed = await createBackend('relaxed');
  const threaded: BenchContext['threaded'] = {};
  for (const name of ['simd', 'relaxed'] as const) {
    if (!backends[name]) continue;
    const two = await createBackend(name, { threads: 2 });
    if (two.info.threads === 2) threaded[name] = two;
  }
  const ctx: BenchContext = { backends, threaded, quick };

  const rows: Row[] = [];
  for (const mod of MODULES) {
    const cases = (await mod(ctx)).filter((c) => c.group.includes(filter));
    const groups = [...new Set(cases.map((c) => c.group))];
    for (const g of groups) {
      const inGroup = cases.filter((c) => c.group === g);
      const medians = new Map<string, number>();
      for (const c of inGroup) {
        const ms = await measure(c, quick);
        medians.set(c.impl, ms.median);
        rows.push({
          group: g, impl: c.impl, medianMs: ms.median, samples: ms.samples,
          gflops: c.flops ? c.flops / ms.median / 1e6 : null,
          gbps: c.bytes ? c.bytes / ms.median / 1e6 : null,
          tokPerSec: c.tokens ? (c.tokens * 1000) / ms.median : null,
          ratio: null, peer: null,
        });
      }
      for (const r of rows.filter((r) => r.group === g)) {
        const c = inGroup.find((x) => x.impl === r.impl)!;
        const peer = c.peer ?? 'js';
        if (peer !== r.impl && medians.has(peer)) {
          r.peer = peer;
          r.ratio = medians.get(peer)! / r.medianMs;
        }
      }
    }
  }
  printTable(rows);
  const out = {
    date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length,
    quick, backends: Object.keys(backends), rows,
  };
  mkdirSync(new URL('../../bench/results/', import.meta.url), { recursive: true });
  // a filtered or quick run never replaces the full table in latest.json
  const file = quick ? 'quick' : filter ? 'filtered' : 'latest';
  writeFileSync(new URL(`../../bench/results/${file}.json`, import.meta.url), JSON.stringify({ ...out, filter }, null, 2) + '\n');
  console.log(`written: bench/results/${file}.json`);
}

async function measure(c: BenchCase, quick: boolean): Promise<{ median: number; samples: number }> {
  await c.setup?.();
  const bench = quick
    ? new Bench({ iterations: 1, time: 0, warmup: false })
    : new Bench({ iterations: 10, time: 400, warmupIterations: 3, warmupTime: 100 });
  bench.add(c.impl, c.fn);
  await bench.run();
  const r = bench.tasks[0]!.result;
  if (r.state === 'errored') throw new Error(`bench ${c.group} / ${c.impl} failed: ${r.error.message}`);
  if (r.state !== 'completed') throw new Error(`bench ${c.group} / ${c.impl}: ${r.state}`);
  return { median: r.latency.p50 ?? r.latency.mean, samples: r.latency.samplesCount ?? 0 };
}

function printTable(rows: Row[]): void {
  const head = ['group', 'impl', 'median ms', 'GFLOP/s', 'GB/s', 'tok/s', 'ratio', 'vs'];
  const body = rows.map((r) => [
    r.group, r.impl, r.medianMs.toFixed(3),
    r.gflops === null ? '' : r.gflops.toPrecision(3),
    r.gbps === null ? '' : r.gbps.toPrecision(3),
    r.tokPerSec === null ? '' : r.tokPerSec.toPrecision(3),
    r.ratio === null ? '' : `${r.ratio.toFixed(2)}x`,
    r.peer ?? '',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ') + ' |';
  console.log(line(head));
  console.log('|' + w.map((n, i) => (i < 2 ? '-'.repeat(n + 2) : '-'.repeat(n + 1) + ':')).join('|') + '|');
  for (const b of body) console.log(line(b));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
