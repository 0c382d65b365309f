// Public API of the OPT decoder: config, checkpoint loading, f32 forward with KV cache, sampling, generation, perplexity.

export { POS_OFFSET, configFromHF, configToHF } from './config.js';
export type { OPTActivation, OPTConfig } from './config.js';
export { loadWeights, validateCheckpoint, weightBytes, weightSpecs, weightTensors } from './weights.js';
export type { F32, OPTLayerWeights, OPTWeights, WeightSpec } from './weights.js';
export { KVCache, OPTModel, RunState, createRunState, forward, lmHead, loadOPT } from './model.js';
export type { ForwardOptions, LoadOptions, ObservePoint, Observer, RunStateOptions } from './model.js';
export { Sampler, argmax, mulberry32 } from './sample.js';
export type { SamplerOptions } from './sample.js';
export { decodeSteps, generate, generateIds, generateStream, generateTokens } from './generate.js';
export type { GenerateOptions, GeneratedPiece, TextCodec, TextGenerateOptions } from './generate.js';
export { evaluatePerplexity, perplexityWindows } from './perplexity.js';
export type { PerplexityOptions, PerplexityProgress, PerplexityResult } from './perplexity.js';
export { OPT_PRESETS, makeRandomCheckpoint, randomCheckpoint, randomOPT } from './random.js';
export type { OutlierOptions, RandomCheckpoint, RandomCheckpointOptions } from './random.js';
export { loadOPTFolder, loadOPTFromUrl } from './folder.js';
export type { FileGetter, FolderOptions, LoadedFolder } from './folder.js';
export { estimateMemory, packedMatrixBytes, clusterCounts } from './memory.js';
export type { MemoryEstimate, MemoryOptions } from './memory.js';
export { QuantizedOPT, QRunState, QKVCache, qforward, qlmHead, qgenerateGreedy, layerForward, fakeQuantAct } from './quantized.js';
export { openSession } from './session.js';
export type { CausalLM, Session } from './session.js';
export type { ActQuant, QLinear, QLayer, QLayerAct, QuantizedOPTParts, QRunStateOptions, QForwardOptions } from './quantized.js';
export { saveQuantizedOPT, loadQuantizedOPT, quantizedSpecs, QUANTIZED_FORMAT, QUANTIZED_FORMAT_VERSION, LOWBIT_VERSION } from './qio.js';
export type { LoadQuantizedOptions } from './qio.js';
