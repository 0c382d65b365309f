// onnxruntime-web's WASM backend in Node (bench/test only; the library never imports ORT).
//
// How it loads: the package's `node` export (dist/ort.node.min.mjs) imports
// dist/ort-wasm-simd-threaded.mjs next to itself and that file reads ort-wasm-simd-threaded.wasm from
// disk; `env.wasm.wasmPaths` is set to that dist/ folder anyway so nothing is ever fetched.
// Threads: ORT initializes its WASM module once per process with `env.wasm.numThreads` (a pthread
// pool of numThreads − 1 Node worker_threads on a shared WebAssembly.Memory; in browsers it also
// needs crossOriginIsolated, which Node does not check). Each session then picks its intra-op
// thread count with `intraOpNumThreads` (≤ numThreads), so one process measures 1 and 2 threads.
// `env.wasm.proxy` stays false: the session runs on the calling thread (no extra worker hop).

import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
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

/** A WASM-EP session over `model` bytes, running with `threads` intra-op threads. */
export async function ortSession(ort: Ort, model: Uint8Array, threads: number): Promise<OrtRunner> {
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['wasm'],
    intraOpNumThreads: threads,
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
