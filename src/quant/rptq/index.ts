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
