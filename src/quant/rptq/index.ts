// RPTQ public API: k-means channel clustering, ClusterMaps and reorder folding (arXiv 2304.01089; hahnyuan/RPTQ4LLM).

export { kmeans, xoshiro128ss, type KMeansOptions, type KMeansResult, type Rng } from './kmeans.js';
export {
  clusterMapFromLabels, validateClusterMap, validatePerm, validateHeadLocal, inversePerm, clusterSizes,
  minMaxFeatures, qkFeatures, buildClusterMap, clusterPerHead, type BuiltClusterMap, type HeadClusterMap,
} from './cluster-map.js';
export {
  permuteVector, permuteLayerNorm, gatherColumns, permuteInputColumns, permuteOutputRows, foldOptLayer,
  type OptLayerWeights, type OptWeightKey, type OptLayerDims, type OptLayerMaps,
} from './fold.js';
export type { ClusterMap } from '../types.js';
export {
  rptqRecipe, customRecipe, baselineRecipe, validateRecipe, recipeToJSON, recipeFromJSON, cloneRecipe, isQuantized, weightGroupOf, checkWeightGrid,
  TENSOR_CLASSES, ACT_CLASSES, RECIPE_PRESETS, CALIBRATION_PRESETS, WEIGHT_GRANULARITIES, DEFAULT_WEIGHT_GROUP, KV_FLOATS,
  type Recipe, type WeightGranularity, type RecipeOverrides, type RecipePresetName, type TensorClass, type ActClass, type ActGranularity, type ClassBits, type KvFloat,
} from './recipe.js';
export { calibrate, calibrationSamples, type CalibrateOptions, type CalibrationProgress, type CalibrationResult, type ChannelRange, type LayerStats } from './calibrate.js';
export {
  quantizeOPT, buildQLayer, buildLmHead, clusterMapsOf, actQuantFromRange, quantizeWeight, nextTokenKL,
  type QuantizeOPTOptions, type KLResult,
} from './pipeline.js';
