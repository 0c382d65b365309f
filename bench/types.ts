// Shared types for `npm run bench`: each file in bench/cases/ contributes cases to one table.

import type { Backend } from '../src/runtime.js';
import type { BackendName } from '../src/kernels/index.js';

export interface BenchContext {
  /** Every backend this engine can run (relaxed only with --experimental-wasm-relaxed-simd). */
  backends: Partial<Record<BackendName, Backend>>;
  /** The same WASM backends with a 2-thread pool (absent where shared memory is unavailable). */
  threaded: Partial<Record<'simd' | 'relaxed', Backend>>;
  /** --quick: one iteration per case (the CI smoke run). */
  quick: boolean;
}

export interface BenchCase {
  /** Rows with the same group are compared with each other (e.g. 'gemv 1x768·768x3072'). */
  group: string;
  /** Who runs it: a backend name or a peer label ('onnxruntime-web', ...). */
  impl: string;
  fn: () => void | Promise<void>;
  /** Floating-point (or integer) operations per call, for GFLOP/s. */
  flops?: number;
  /** Bytes moved per call (input read, for GB/s). */
  bytes?: number;
  /** Tokens a call processes (a decode step: 1; a prefill: its length), for tokens/s. */
  tokens?: number;
  /** The impl in the same group this row's ratio is taken against (default: 'js'). */
  peer?: string;
  /** Optional setup run once before timing (allocations, packing). */
  setup?: () => void | Promise<void>;
}

export type CaseModule = (ctx: BenchContext) => Promise<BenchCase[]> | BenchCase[];
