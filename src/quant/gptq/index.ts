// GPTQ (arXiv 2210.17323, as IST-DASLab/gptq implements it): streaming Hessians, f64 Cholesky of H⁻¹,
// the column loop, the layer-wise OPT driver and AutoGPTQ / GPTQModel checkpoint interop.

export { createHessian, addBatch, type Hessian, type GramScratch } from './hessian.js';
export { choleskyInPlace, invertLowerInPlace, choleskyInverse, upperCholeskyOfInverse, upperCholeskyOfInverseReference } from './linalg.js';
export { findParams, type MseSearch } from './quantizer.js';
export { gptqQuantize, rtnQuantize, buildTensor, type GPTQOptions, type GPTQResult } from './gptq.js';
export {
  parseQuantizeConfig, quantizeConfigJson, decodeGPTQLinear, readGPTQLinear, encodeGPTQLinear, gptqLinearTensors,
  exportGPTQCheckpoint, loadGPTQCheckpoint, OPT_GPTQ_MODULES,
  type GPTQQuantizeConfig, type GPTQCheckpointFormat, type GPTQLinearTensors, type ExportOptions, type LoadedGPTQ,
  type LoadGPTQOptions, type GPTQExecution,
} from './autogptq.js';
export {
  gptqQuantizeOPT, rtnQuantizeOPT, cloneOPT, calibrationSamples, decoderLayerInputs, GPTQ_CPU_PRESET,
  type GPTQModelOptions, type GPTQModelResult, type GPTQProgress, type GPTQLayerTiming, type OPTLinear,
} from './model.js';
export { packedGPTQOPT, gptqRecipe, type PackedGPTQOptions } from './packed-opt.js';
export { nextTokenKLOf, klOfLogits, type NextTokenKL } from './eval.js';
