// Quantization core: schemes, range estimation, observers, quantize/dequantize, packed formats.
// RPTQ (cluster maps, KMeans, folding) lives in ./rptq/.

export type { ClusterMap, RangeMethod, Granularity, Bits, QuantScheme, QParams, QuantLayout, QuantizedTensor } from './types.js';
export { FORMATS, U2, U3, U4, U8, formatForBits, formatTraits, packedRowBytes, packedBytes, checkBits, type PackedFormat, type FormatTraits } from './formats.js';
export { roundHalfEven, quantizeValue, dequantizeValue } from './round.js';
export { validateScheme, layoutOf, paramSlots } from './scheme.js';
export { MIN_SCALE, qparamsFromRange, qparamsFromRanges, mseSearch, percentileSorted, estimateParams } from './range.js';
export { quantize, dequantize, fakeQuantize, computeParams, codesOf, quantizedByteLength, defaultKernels, type QuantizeOptions } from './quantize.js';
export {
  minMaxObserver, movingAverageMinMaxObserver, perChannelMinMaxObserver, movingAveragePerChannelMinMaxObserver,
  calibrate, qparamsFromStats, type Observer, type ObserverStats, type ObserverKind,
} from './observer.js';
export * as gptq from './gptq/index.js';
export { QLinear, packQLinear, qlinear, qlinearInt, qlinearIntF32, type QLinearOptions, type ActivationQuant } from './qlinear.js';
