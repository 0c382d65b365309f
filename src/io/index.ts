// Public API of lowbit's checkpoint IO: safetensors, restricted torch.save reader, shards, fetch. Node file reading is in ./node.js.

export { DTYPE_BYTES, dtypeBytes, encodeFloat32, f16BitsToF32Bits, f32ToBf16Bits, f32ToF16Bits, isRawDtype, numelOf, toFloat32 } from './tensor.js';
export type { RawDtype, RawTensor } from './tensor.js';
export { parseJson } from './bytes.js';
export { SAFETENSORS_MAX_HEADER, readSafetensors, readSafetensorsHeader, writeSafetensors } from './safetensors.js';
export type { ReadOptions, Safetensors, SafetensorsEntry, SafetensorsHeader, TensorToWrite } from './safetensors.js';
export { readTorchBin } from './torch.js';
export type { TorchBin, TorchReadOptions } from './torch.js';
export { ALLOWED_GLOBALS } from './pickle.js';
export { crc32, looksLikeZip, readZip, zipEntryData } from './zip.js';
export type { ZipArchive, ZipEntry } from './zip.js';
export { loadShardedSafetensors, loadShardedTorchBin, parseShardIndex } from './sharded.js';
export type { ShardedCheckpoint, ShardIndex } from './sharded.js';
export { readCheckpoint } from './checkpoint.js';
export type { Checkpoint } from './checkpoint.js';
export { bytesFromResponse, fetchBytes } from './fetch.js';
export type { FetchBytesOptions } from './fetch.js';
