// onnxruntime-web's WASM backend in Node (bench/test only; the library never imports ORT).
//
// How it loads: the package's `node` export (dist/ort.node.min.mjs) imports
// dist/ort-wasm-simd-threaded.mjs next to itself, and that reads ort-wasm-simd-threaded.wasm from
// disk; `env.wasm.wasmPaths` is set to that dist/ folder anyway so nothing is ever fetched.
// `env.wasm.proxy` stays false: sessions run on the calling thread (no extra worker hop).
//
// Threads: `env.wasm.numThreads` is read once, when the instance initializes its WASM module
// (OrtInit → a *global* intra-op thread pool, numThreads − 1 Emscripten pthreads = Node
// worker_threads on a shared WebAssembly.Memory; browsers also need crossOriginIsolated, Node has
// SharedArrayBuffer unconditionally). The web build ignores a session's intraOpNumThreads, so one
// ORT instance cannot measure both 1 and 2 threads. `OrtHost` therefore runs each thread count in
// its own worker thread with its own ORT instance: still one process, one run, and the main thread
// waits while a host measures, so lowbit and ORT never run at the same time.

import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { timingRule } from './timing.js';
import type * as OrtNs from 'onnxruntime-web';

export type Ort = typeof OrtNs;

let ortP: Promise<Ort> | null = null;
let initThreads = 0;

/** The dist/ folder of the installed onnxruntime-web, as a file URL ending in '/'. */
export function ortDistUrl(): string {
  const req = createRequire(import.meta.url);
  // the package's `require` entry (dist/ort.node.min.js) sits in dist/ next to the .wasm files
  return pathToFileURL(dirname(req.resolve('onnxruntime-web')) + '/').href;
}

/**
 * Imports onnxruntime-web and configures its WASM backend for up to `maxThreads` threads. Only the
 * first call's maxThreads takes effect (ORT initializes its WASM module once per process).
 */
export async function loadOrt(maxThreads = 2): Promise<Ort> {
  if (!ortP) {
    initThreads = maxThreads;
    ortP = (async () => {
      const ort = (await import('onnxruntime-web')) as Ort;
      ort.env.wasm.wasmPaths = ortDistUrl();
      ort.env.wasm.numThreads = maxThreads;
      ort.env.wasm.simd = true;
      ort.env.wasm.proxy = false;
      ort.env.logLevel = 'error';
      return ort;
    })();
  }
  return ortP;
}

/** The numThreads ORT was initialized with (0 before `loadOrt`). */
export function ortMaxThreads(): number {
  return initThreads;
}

export interface OrtRunner {
  session: OrtNs.InferenceSession;
  /** Runs the session once with the given feeds; returns the first output's data. */
  run(feeds: Record<string, OrtNs.Tensor>): Promise<Float32Array>;
  release(): Promise<void>;
}

/** A WASM-EP session over `model` bytes (threads: see the header). */
export async function ortSession(ort: Ort, model: Uint8Array, threads: number): Promise<OrtRunner> {
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['wasm'],
    intraOpNumThreads: threads, // (ignored by the web build: the instance's numThreads rules)
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const out = session.outputNames[0]!;
  return {
    session,
    async run(feeds) {
      const r = await session.run(feeds);
      const t = r[out]!;
      const data = t.data as Float32Array;
      // ORT tensors here are CPU tensors whose data is a JS copy; nothing to dispose per run.
      return data;
    },
    release: () => session.release(),
  };
}

// ---- hosts: one ORT instance per thread count, each in its own worker thread ------------------

export interface HostRequest {
  id: number;
  model: Uint8Array;
  M: number;
  K: number;
  a: Float32Array;
  quick: boolean;
  /** Output elements to send back (the accuracy check reads a prefix). */
  keep: number;
}

export type HostReply =
  | { id: number; ok: true; median: number; samples: number; output: Float32Array; numThreads: number; ready?: true }
  | { id: number; ok: false; error: string };

/**
 * The host thread's program. It is an eval worker (a string, not a file) so it runs the same from
 * dist/ and from the TypeScript sources under vitest; the timing rule is ./timing.ts's own
 * `timingRule`, inlined with Function.prototype.toString, so ORT and lowbit rows are timed alike.
 */
function hostSource(): string {
  return `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { threads, ortUrl, distUrl, tinybenchUrl } = workerData;
  const { Bench } = await import(tinybenchUrl);
  const timeIt = (${timingRule.toString()})(Bench);
  const ort = await import(ortUrl);
  ort.env.wasm.wasmPaths = distUrl;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'error';
  parentPort.on('message', async (req) => {
    try {
      const s = await ort.InferenceSession.create(req.model, {
        executionProviders: ['wasm'], interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential',
      });
      const out = s.outputNames[0];
      const feeds = { A: new ort.Tensor('float32', req.a, [req.M, req.K]) };
      let last = new Float32Array(0);
      const t = await timeIt(async () => { last = (await s.run(feeds))[out].data; }, req.quick);
      await s.release();
      const output = last.slice(0, req.keep);
      parentPort.postMessage({ id: req.id, ok: true, median: t.median, samples: t.samples, output, numThreads: ort.env.wasm.numThreads }, [output.buffer]);
    } catch (e) {
      parentPort.postMessage({ id: req.id, ok: false, error: String((e && e.stack) || e) });
    }
  });
  parentPort.postMessage({ id: 0, ok: true, ready: true });
})().catch((e) => parentPort.postMessage({ id: 0, ok: false, error: String((e && e.stack) || e) }));
`;
}

/** A worker thread holding its own ORT instance, initialized with `threads` threads. */
export class OrtHost {
  private readonly worker: Worker;
  private next = 1;
  private readonly pending = new Map<number, (r: HostReply) => void>();
  private readonly ready: Promise<void>;

  constructor(readonly threads: number) {
    const req = createRequire(import.meta.url);
    const distUrl = ortDistUrl();
    this.worker = new Worker(hostSource(), {
      eval: true,
      workerData: {
        threads, distUrl,
        // the same build the main thread imports (the package's `node` + `import` export)
        ortUrl: new URL('ort.node.min.mjs', distUrl).href,
        tinybenchUrl: pathToFileURL(req.resolve('tinybench')).href,
      },
    });
    this.ready = new Promise((resolve, reject) => {
      this.pending.set(0, (r) => (r.ok ? resolve() : reject(new Error(`ORT host (${threads} threads) failed to start: ${r.error}`))));
    });
    this.worker.on('message', (r: HostReply) => {
      this.pending.get(r.id)?.(r);
      this.pending.delete(r.id);
    });
    this.worker.on('error', (e) => {
      for (const [id, done] of this.pending) done({ id, ok: false, error: String(e) });
      this.pending.clear();
    });
  }

  /** Times Y = model(A) in the host (median ms, same rule as ./timing.ts) and returns its output prefix. */
  async measure(model: Uint8Array, M: number, K: number, a: Float32Array, quick: boolean, keep: number) {
    await this.ready;
    const id = this.next++;
    const reply = await new Promise<HostReply>((resolve) => {
      this.pending.set(id, resolve);
      const req: HostRequest = { id, model, M, K, a, quick, keep };
      this.worker.postMessage(req);
    });
    if (!reply.ok) throw new Error(`ORT host (${this.threads} threads): ${reply.error}`);
    return reply;
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}
