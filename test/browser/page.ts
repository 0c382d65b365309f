// The in-browser half of `npm run test:browser`: runs in headless Chromium on a page served by
// test/browser/run.ts, checks backend choice, kernels against the js reference, the Web Worker pool
// (cross-origin isolated variant) or its one-thread fallback (plain variant) and the tiny OPT
// fixture end to end, then POSTs `{variant, env, checks}` to the runner. Tolerances are those of the
// Node suites (test/conformance/f32.ts, test/qmatmul.test.ts, test/opt.test.ts).

import {
  backend, createBackend, createRunState, dispose, fetchBytes, forward, generateIds, init, kernels, loadOPT, loadOPTFromUrl,
  loadQuantizedOPT, LowbitError, QRunState, qforward, rptq, saveQuantizedOPT, type Backend, type BackendInfo,
} from '../../src/index.js';
import { selfTest } from '../../src/selftest.js';
import { withChecks } from '../../src/kernels/index.js';
import { wasmKernels } from '../../src/wasm/kernels.js';
import { instantiate } from '../../src/wasm/loader.js';
import { qmmRoute } from '../../src/wasm/qmatmul.js';
import { CHECK } from './checks.js';
import {
  allWorkloads, atLeastTwoCpus, f32Ops, GEMM_SHAPES, packedAttention, qlinearIntCases, qlinearW4, Q_SHAPES, rand, RPTQ_CASE, rptqCalibration,
} from './workloads.js';

/** What one check reports to the runner. */
export interface CheckResult {
  name: string;
  status: 'pass' | 'fail' | 'skip';
  detail: string;
  ms: number;
}

/** The JSON body of POST /report/result. */
export interface PageReport {
  variant: string;
  env: { userAgent: string; crossOriginIsolated: boolean; hardwareConcurrency: number; sharedArrayBuffer: boolean };
  checks: CheckResult[];
}

const params = new URLSearchParams(location.search);
const variant = params.get('variant') ?? 'unknown';
const fixtureUrl = params.get('fixture');
const generatedUrl = params.get('generated');
const coi = variant === 'coi';

const realHardwareConcurrency = navigator.hardwareConcurrency;
atLeastTwoCpus(navigator);

function post(kind: 'progress' | 'result' | 'error', body: unknown): Promise<Response> {
  return fetch(`/report/${kind}?variant=${variant}`, { method: 'POST', body: JSON.stringify(body) });
}

class Skip extends Error {}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

const checks: CheckResult[] = [];

async function check(name: string, fn: () => string | Promise<string>): Promise<void> {
  await post('progress', { name });
  const t0 = performance.now();
  let status: CheckResult['status'] = 'pass', detail: string;
  try {
    detail = await fn();
  } catch (e) {
    status = e instanceof Skip ? 'skip' : 'fail';
    detail = e instanceof Skip ? e.message : String((e as Error)?.stack ?? e);
  }
  checks.push({ name, status, detail, ms: Math.round(performance.now() - t0) });
}

// ---------------------------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------------------------

/** First index where a and b differ in bits (NaN payloads included), or -1. */
function firstBitDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

function assertBitExact(got: Float32Array, want: Float32Array, what: string): void {
  const i = firstBitDiff(got, want);
  assert(i < 0, `${what}: not bit-identical at ${i}: ${got[i]} vs ${want[i]} (lengths ${got.length}, ${want.length})`);
}

/** max |a − b| / max |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0, mx = 0;
  for (let i = 0; i < b.length; i++) {
    e = Math.max(e, Math.abs(a[i]! - b[i]!));
    mx = Math.max(mx, Math.abs(b[i]!));
  }
  return e / mx;
}

const U = 2 ** -24;

/** test/conformance/f32.ts's GEMM bound: |c − c_ref| ≤ 2·K·u·(Σ_k |a_k·b_k| + |bias|) + 1e-30, for c = a·bᵀ (b: [N, K]). */
function assertGemm(got: Float32Array, want: Float32Array, a: Float32Array, b: Float32Array, bias: Float32Array | null,
  M: number, N: number, K: number, what: string): number {
  assert(got.length === M * N && want.length === M * N, `${what}: ${got.length} outputs, expected ${M * N}`);
  let worst = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let abs = bias ? Math.abs(bias[n]!) : 0;
      for (let k = 0; k < K; k++) abs += Math.abs(a[m * K + k]! * b[n * K + k]!);
      const d = Math.abs(got[m * N + n]! - want[m * N + n]!), tol = 2 * Math.max(K, 1) * U * abs + 1e-30;
      assert(d <= tol, `${what}: c[${m},${n}] = ${got[m * N + n]}, reference ${want[m * N + n]} (|Δ| ${d} > ${tol})`);
      worst = Math.max(worst, d / tol);
    }
  }
  return worst;
}

function assertSameBits(got: Map<string, Float32Array>, want: Map<string, Float32Array>, what: string): void {
  assert(got.size === want.size && got.size > 0, `${what}: ${got.size} results vs ${want.size}`);
  for (const [k, w] of want) assertBitExact(got.get(k) ?? new Float32Array(0), w, `${what}: ${k}`);
}

function infoText(i: BackendInfo): string {
  return `${i.name}, ${i.threads} thread(s)${i.notes.length ? `, notes: ${i.notes.join(' | ')}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

async function run(): Promise<void> {
  await check(CHECK.environment, () => {
    const iso = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
    assert(iso === coi, `crossOriginIsolated is ${iso} on the ${variant} variant`);
    assert((typeof SharedArrayBuffer === 'function') === coi, `SharedArrayBuffer ${typeof SharedArrayBuffer} on the ${variant} variant`);
    return `crossOriginIsolated=${iso}, hardwareConcurrency=${realHardwareConcurrency}` +
      (realHardwareConcurrency < 2 ? ' (reported as 2 so the 2-thread pool is tested)' : '');
  });

  await check(CHECK.auto, async () => {
    const info = await init({ backend: 'auto' });
    assert(info.simdSupported && info.relaxedSupported, `simdSupported=${info.simdSupported} relaxedSupported=${info.relaxedSupported}`);
    assert(info.name === 'relaxed' && info.requested === 'auto', `chose ${info.name}: ${info.notes.join(' | ')}`);
    assert(info.threads === 1 && info.notes.length === 0, `expected 1 thread and no notes: ${infoText(info)}`);
    const failures = selfTest(kernels());
    assert(failures.length === 0, `relaxed self-test: ${failures.join('; ')}`);
    return infoText(info);
  });

  await check(CHECK.simd, async () => {
    const info = await init({ backend: 'simd' });
    assert(info.name === 'simd' && info.threads === 1 && info.notes.length === 0, infoText(info));
    const failures = selfTest(kernels());
    assert(failures.length === 0, `simd self-test: ${failures.join('; ')}`);
    return infoText(info);
  });

  await init({ backend: 'js' });
  const refF32 = f32Ops();
  const js = await createBackend('js');
  const refW4 = qlinearW4(js), refInt = qlinearIntCases(js);

  for (const name of ['relaxed', 'simd'] as const) {
    await check(CHECK.f32(name), async () => {
      await init({ backend: name });
      const got = f32Ops();
      let worst = 0;
      for (const [M, N, K] of GEMM_SHAPES) {
        const a = rand(M * K, M + N, 2), b = rand(N * K, K, 1), bias = rand(N, 3);
        for (const op of ['linear', 'matmul']) {
          const key = `${op} ${M}x${N}x${K}`;
          worst = Math.max(worst, assertGemm(got.get(key)!, refF32.get(key)!, a, b, op === 'linear' ? bias : null, M, N, K, `${name} ${key}`));
        }
      }
      return `${got.size} products within 2·K·u·Σ|a·b| (worst ${(worst * 100).toFixed(1)}% of the bound)`;
    });

    const be = await createBackend(name);
    await check(CHECK.w4(name), () => {
      const got = qlinearW4(be);
      const notes: string[] = [];
      for (const [M, N, K] of Q_SHAPES) {
        const key = `qlinear W4g32 ${M}x${N}x${K}`, y = got.get(key)!, want = refW4.get(key)!;
        if (qmmRoute(M, 0) === 'f32') {
          // dequantize-then-f32-GEMM route: within f32 rounding of the integer twin (test/qmatmul.test.ts)
          const e = relErr(y, want);
          assert(e < 2e-6, `${name} ${key}: relative error ${e} ≥ 2e-6`);
          notes.push(`M=${M} f32 route rel ${e.toExponential(1)}`);
        } else {
          assertBitExact(y, want, `${name} ${key}`);
          notes.push(`M=${M} bit-exact`);
        }
      }
      return notes.join(', ');
    });

    await check(CHECK.int(name), () => {
      const got = qlinearIntCases(be);
      for (const [k, want] of refInt) assertBitExact(got.get(k)!, want, `${name} ${k}`);
      return `${got.size} cases bit-identical`;
    });

    await check(CHECK.attn(name), () => {
      const got = packedAttention(be);
      for (const [k, [y, want]] of got) assertBitExact(y, want, `${name} ${k}`);
      return `${got.size} caches bit-identical`;
    });
  }

  if (coi) {
    await check(CHECK.pool, async () => {
      const inst = await instantiate('relaxed', { threads: 2, stallTimeoutMs: 10_000 });
      const pool = inst.pool;
      assert(pool !== null, `no pool: ${inst.notes.join(' | ')}`);
      try {
        assert(pool.threads === 2 && inst.notes.length === 0, `pool threads ${pool.threads}, notes: ${inst.notes.join(' | ')}`);
        const handles = pool.workerHandles();
        assert(handles.length === 1 && handles.every((w) => w instanceof Worker), `worker handles: ${handles.map((w) => Object.prototype.toString.call(w)).join(', ')}`);
        assert(inst.heap.memory.buffer instanceof SharedArrayBuffer, 'WASM memory is not shared');
        // a ping's one chunk is left to the workers: each round trip proves a worker ran a kernel call
        const pings = pool.pingMicros(50).sort((a, b) => a - b);
        assert(pings.length === 50, `${pings.length} of 50 hand-offs completed`);
        return `1 Web Worker + main thread; 50 hand-offs, median ${pings[25]!.toFixed(1)} µs`;
      } finally {
        await pool.dispose();
      }
    });

    await check(CHECK.faults, async () => {
      // as test/threads.test.ts 'worker failures', on Web Workers (a window cannot Atomics.wait: the main thread spins)
      const M = 32, N = 512, K = 256, a = rand(M * K, 1), b = rand(N * K, 2);
      const want = new Float32Array(M * N), c = new Float32Array(M * N);
      (await createBackend('relaxed')).kernels.sgemmNT(M, N, K, a, K, b, K, want, N, null);
      /** Worker 1 fails in its next chunk (`kind`): returns the LowbitError, then checks the pool still computes `want`. */
      const failOnce = async (kind: 'throw' | 'hang', stallTimeoutMs: number): Promise<[LowbitError, number, number]> => {
        const inst = await instantiate('relaxed', { threads: 2, stallTimeoutMs });
        const pool = inst.pool;
        assert(pool !== null, `no pool: ${inst.notes.join(' | ')}`);
        const k = withChecks(wasmKernels(inst));
        try {
          const t0 = performance.now();
          let err: LowbitError | null = null;
          for (let i = 0; i < 200 && !err; i++) {
            pool.injectFault(1, kind);
            try {
              k.sgemmNT(M, N, K, a, K, b, K, c, N, null);
            } catch (e) {
              assert(e instanceof LowbitError && e.code === 'E_BACKEND', `${kind}: threw ${String(e)}`);
              err = e;
            }
          }
          assert(err, `${kind}: worker 1 never claimed a chunk in 200 GEMMs`);
          const ms = performance.now() - t0;
          pool.injectFault(0);
          c.fill(0);
          k.sgemmNT(M, N, K, a, K, b, K, c, N, null);
          assertBitExact(c, want, `after worker 1's ${kind}`);
          return [err, ms, pool.threads];
        } finally {
          await pool.dispose();
        }
      };
      // a generous stall timeout where none is expected (a loaded machine may deschedule a worker)
      const [thrown, , afterThrow] = await failOnce('throw', 10_000);
      assert(/worker 1 failed in sgemm_nt: Error: injected fault/.test(thrown.message), thrown.message);
      assert(afterThrow === 2, `pool threads ${afterThrow} after a worker threw (expected the pool to stay)`);
      const [stalled, ms, afterStall] = await failOnce('hang', 300);
      assert(/thread pool: stalled: 1 claimed chunk\(s\) unfinished/.test(stalled.message) && ms < 10_000, `${stalled.message} (${ms} ms)`);
      assert(afterStall === 1, `pool threads ${afterStall} after a stall (expected 1)`);
      return `throw → '${thrown.message.slice(0, 50)}...', pool kept; stall → E_BACKEND after ${Math.round(ms)} ms, then 1 thread`;
    });

    await check(CHECK.grow, async () => {
      const two = await createBackend('relaxed', { threads: 2, initialMemoryBytes: 1 << 20 });
      const one = await createBackend('relaxed', { initialMemoryBytes: 1 << 20 });
      try {
        const before = two.heap!.stats().memoryBytes;
        const M = 256, N = 512, K = 1024, a = rand(M * K, 4, 2), b = rand(N * K, 5); // 3 MiB of operands: memory grows
        const c2 = new Float32Array(M * N), c1 = new Float32Array(M * N);
        two.kernels.sgemmNT(M, N, K, a, K, b, K, c2, N, null);
        one.kernels.sgemmNT(M, N, K, a, K, b, K, c1, N, null);
        assertBitExact(c2, c1, 'sgemmNT 256x512x1024');
        assertSameBits(qlinearW4(two), qlinearW4(one), 'qlinear after growth');
        const after = two.heap!.stats().memoryBytes;
        assert(after > before, `memory did not grow (${before} bytes)`);
        assert(two.info.threads === 2 && two.heap!.memory.buffer instanceof SharedArrayBuffer, infoText(two.info));
        return `shared memory ${before >> 20} → ${after >> 20} MiB; GEMM and qlinear identical`;
      } finally {
        await two.dispose();
      }
    });

    for (const name of ['relaxed', 'simd'] as const) {
      await check(CHECK.threads(name), async () => {
          const info = await init({ backend: name, threads: 2 });
        assert(info.name === name && info.threads === 2 && info.notes.length === 0, infoText(info));
        const two = allWorkloads();
        assert(backend().threads === 2, `pool stopped during the run: ${infoText(backend())}`);
        await dispose();
        assert(backend().threads === 1, `after dispose(): ${infoText(backend())}`);
        await init({ backend: name, threads: 1 });
        assertSameBits(two, allWorkloads(), name);
        return `${two.size} GEMV/GEMM/qlinear/qlinearInt results identical`;
      });
    }
  } else {
    await check(CHECK.fallback, async () => {
      const info = await init({ threads: 2 });
      assert(info.name === 'relaxed' && info.threads === 1, infoText(info));
      const note = info.notes.join(' | ');
      assert(/threads: 2 requested, running 1 thread: .*cross-origin isolated/.test(note), `note does not say why: '${note}'`);
      const got = allWorkloads();
      await init({ backend: 'relaxed' });
      assertSameBits(got, allWorkloads(), 'fallback');
      return `note: ${note}`;
    });
  }

  await check(CHECK.worker, async () => {
    const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    try {
      const reply = await new Promise<{ info?: BackendInfo; crossOriginIsolated?: boolean; results?: Array<[string, Float32Array]>; error?: string }>((res, rej) => {
        const timer = setTimeout(() => rej(new Error('the worker did not answer within 30 s')), 30_000);
        w.onmessage = (e) => { clearTimeout(timer); res(e.data); };
        w.onerror = (e) => { clearTimeout(timer); rej(new Error(`worker error: ${e.message || 'failed to load worker.js or its imports'}`)); };
        w.postMessage({ threads: 2 });
      });
      if (reply.error) throw new Error(`in the worker: ${reply.error}`);
      const info = reply.info!;
      assert(reply.crossOriginIsolated === coi, `worker crossOriginIsolated=${reply.crossOriginIsolated}`);
      assert(info.name === 'relaxed', `worker chose ${infoText(info)}`);
      if (coi) assert(info.threads === 2 && info.notes.length === 0, `worker: ${infoText(info)}`);
      else assert(info.threads === 1 && /running 1 thread/.test(info.notes.join(' ')), `worker: ${infoText(info)}`);
      await init({ backend: 'relaxed' });
      assertSameBits(new Map(reply.results!), allWorkloads(), 'worker vs window');
      return `${infoText(info)}; ${reply.results!.length} results identical to the window's 1 thread`;
    } finally {
      w.terminate();
    }
  });

  await check(CHECK.opt, async () => {
    if (!fixtureUrl) throw new Skip('fixture not served (see the runner output)');
    const base = new URL(fixtureUrl, location.href);
    const json = async (p: string) => JSON.parse(new TextDecoder().decode(await fetchBytes(new URL(p, base))));
    const ids = await json('ids.json') as { tokens: number[]; batch: number[][]; prompt: number[]; steps: number };
    const greedy = await json('expected/greedy.json') as { tokens: number[]; batch_tokens: number[][] };
    const fb = await fetchBytes(new URL('expected/full_logits.f32', base));
    const full = new Float32Array(fb.buffer.slice(fb.byteOffset, fb.byteOffset + fb.byteLength));
    const runs: Array<[string, () => Promise<Backend>, 'url' | 'bin']> = [
      ['js', () => createBackend('js'), 'url'], ['simd', () => createBackend('simd'), 'url'],
      ['relaxed', () => createBackend('relaxed'), 'url'], ['relaxed', () => createBackend('relaxed'), 'bin'],
    ];
    if (coi) runs.push(['relaxed 2 threads', () => createBackend('relaxed', { threads: 2, minParallelFlops: 0 }), 'url']);
    const out: string[] = [];
    for (const [label, make, source] of runs) {
      const be = await make();
      try {
        const model = source === 'url'
          ? (await loadOPTFromUrl(base, { backend: be })).model
          : loadOPT(await json('config.json'), await fetchBytes(new URL('pytorch_model.bin', base)), { backend: be, fileName: 'pytorch_model.bin' });
        const what = `${label} from ${source === 'url' ? 'loadOPTFromUrl (model.safetensors)' : 'pytorch_model.bin'}`;
        const logits = forward(model, createRunState(model, { maxContext: 32 }), ids.tokens, 0, { logits: 'all' });
        const e = relErr(logits, full);
        assert(e < 1e-5, `${what}: full-sequence logits relative error ${e} ≥ 1e-5`);
        const one = generateIds(model, [ids.prompt], { maxNewTokens: ids.steps, stopAtEos: false });
        assert(JSON.stringify(one[0]) === JSON.stringify(greedy.tokens), `${what}: greedy ${JSON.stringify(one[0])} vs ${JSON.stringify(greedy.tokens)}`);
        const batch = generateIds(model, ids.batch, { maxNewTokens: ids.steps, stopAtEos: false });
        assert(JSON.stringify(batch) === JSON.stringify(greedy.batch_tokens), `${what}: batched greedy differs`);
        if (label.includes('threads')) assert(be.info.threads === 2, `${what}: ${infoText(be.info)}`);
        out.push(`${label.replace(' threads', 'T')}${source === 'bin' ? ' .bin' : ''} ${e.toExponential(1)}`);
      } finally {
        await be.dispose();
      }
    }
    return `tokens exact; logits rel err ${out.join(' · ')}`;
  });

  await check(CHECK.rptq, async () => {
    if (!fixtureUrl || !generatedUrl) throw new Skip('fixture not served (see the runner output)');
    const gen = new URL(generatedUrl, location.href);
    const file = await fetchBytes(new URL('rptq.safetensors', gen));
    const lb = await fetchBytes(new URL('rptq-logits.f32', gen));
    const want = new Float32Array(lb.buffer.slice(lb.byteOffset, lb.byteOffset + lb.byteLength));
    const { greedy } = JSON.parse(new TextDecoder().decode(await fetchBytes(new URL('rptq.json', gen)))) as { greedy: number[] };
    const out: string[] = [];
    // 1. the whole pipeline in the page (calibrate, k-means, fold, quantize, save) gives Node's file, byte for byte
    const be = await createBackend('simd');
    try {
      const { model } = await loadOPTFromUrl(new URL(fixtureUrl, location.href), { backend: be });
      const qm = rptq.quantizeOPT(model, rptq.rptqRecipe(RPTQ_CASE.preset, RPTQ_CASE.overrides), { calibration: rptqCalibration(1024, model.config.vocabSize) });
      const mine = saveQuantizedOPT(qm);
      const first = mine.findIndex((v, i) => v !== file[i]);
      assert(mine.length === file.length && first < 0, `quantized in the page: ${mine.length} bytes vs Node's ${file.length}, first difference at byte ${first}`);
      out.push(`page file = Node file (${file.length} B)`);
    } finally {
      await be.dispose();
    }
    // 2. Node's file, fetched: logits (bit-equal on simd, the build Node ran) and greedy tokens per backend
    const runs: Array<[string, () => Promise<Backend>]> = [['simd', () => createBackend('simd')], ['relaxed', () => createBackend('relaxed')]];
    if (coi) runs.push(['relaxed 2 threads', () => createBackend('relaxed', { threads: 2, minParallelFlops: 0 })]);
    let relaxed1: Float32Array | null = null;
    for (const [label, make] of runs) {
      const b = await make();
      try {
        const q = loadQuantizedOPT(file, { backend: b, fileName: 'rptq.safetensors' });
        const s = new QRunState(q, { maxContext: RPTQ_CASE.probe.length });
        const logits = qforward(q, s, RPTQ_CASE.probe, 0, { logits: 'all' }).slice();
        s.dispose();
        const e = relErr(logits, want);
        if (label === 'simd') assert(logits.every((v, i) => Object.is(v, want[i])), `${label}: logits differ from Node's (rel err ${e})`);
        else assert(e < 1e-5, `${label}: logits rel err ${e} ≥ 1e-5 vs Node's simd`);
        if (label === 'relaxed') relaxed1 = logits;
        if (label.includes('threads')) {
          assert(b.info.threads === 2, `${label}: ${infoText(b.info)}`);
          assert(relaxed1 !== null && logits.every((v, i) => Object.is(v, relaxed1![i])), `${label}: logits differ from 1 thread`);
        }
        const g = generateIds(q, [RPTQ_CASE.prompt], { maxNewTokens: RPTQ_CASE.steps, stopAtEos: false })[0]!;
        assert(JSON.stringify(g) === JSON.stringify(greedy), `${label}: greedy ${JSON.stringify(g)} vs Node's ${JSON.stringify(greedy)}`);
        q.dispose();
        out.push(`${label.replace(' threads', 'T')} ${e === 0 ? 'bit-equal' : e.toExponential(1)}`);
      } finally {
        await b.dispose();
      }
    }
    return `${out.join(' · ')}; greedy tokens equal`;
  });
}

run().then(
  () => {
    const report: PageReport = {
      variant,
      env: {
        userAgent: navigator.userAgent, crossOriginIsolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
        hardwareConcurrency: realHardwareConcurrency, sharedArrayBuffer: typeof SharedArrayBuffer === 'function',
      },
      checks,
    };
    return post('result', report);
  },
  (e: unknown) => post('error', { error: `outside any check: ${String((e as Error)?.stack ?? e)}` }),
);
