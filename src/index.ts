// lowbit: low-bit LLM quantization and CPU inference in TypeScript with WASM SIMD kernels.

export { LowbitError, type ErrorCode } from './errors.js';
export { init, dispose, backend, kernels, createBackend, currentBackend, type InitOptions, type BackendInfo, type Backend } from './runtime.js';
export type { Kernels, BackendName } from './kernels/index.js';
export type { PackedRows } from './kernels/f32.js';
export { Tensor, DTYPES, bytesPerElement, type DType, type TypedArray, type TensorOptions } from './tensor.js';
export { matmul, linear, add, mul, relu, gelu, layerNorm, softmax, embedding, argmax, type SoftmaxOptions } from './ops.js';
export { Heap, type HeapStats } from './wasm/heap.js';
export { f16ToF32, f32ToF16 } from './util/f16.js';
export * from './tokenizer/index.js';
export * from './quant/index.js';
export * as rptq from './quant/rptq/index.js';
export * from './io/index.js';
export * as opt from './models/opt/index.js';
export {
  configFromHF, loadOPT, loadOPTFromUrl, createRunState, forward, lmHead, generate, generateStream, generateTokens, generateIds,
  evaluatePerplexity, perplexityWindows, Sampler, randomOPT, makeRandomCheckpoint, OPT_PRESETS,
  estimateMemory, saveQuantizedOPT, loadQuantizedOPT, QuantizedOPT, QRunState, qforward, qlmHead, qgenerateGreedy, type CausalLM,
  OPTModel, RunState, KVCache, type OPTConfig, type GenerateOptions, type TextGenerateOptions,
  type PerplexityOptions, type PerplexityResult, type SamplerOptions,
} from './models/opt/index.js';
