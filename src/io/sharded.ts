// Sharded checkpoints: `model.safetensors.index.json` / `pytorch_model.bin.index.json` ({metadata, weight_map}) as
// written by transformers' `save_pretrained(max_shard_size=...)`, and loading every shard once.

import { LowbitError } from '../errors.js';
import { describeJson, isJsonObject, parseJson } from './bytes.js';
import { readSafetensors } from './safetensors.js';
import type { RawTensor } from './tensor.js';
import { readTorchBin } from './torch.js';

export interface ShardIndex {
  fileName: string;
  /** Tensor name → shard file name, in index order. */
  weightMap: Map<string, string>;
  /** The index's `metadata` object (e.g. `total_size`), as parsed. */
  metadata: Record<string, unknown>;
  /** Distinct shard file names, in first-use order. */
  shards: string[];
}

/**
 * Parses an index file (text, bytes or an already parsed object). Shard names must be plain relative file names
 * (no `/`, `\` or `..`), so a hostile index cannot point `fetchShard` outside the checkpoint folder.
 */
export function parseShardIndex(
  input: string | Uint8Array | ArrayBuffer | Record<string, unknown>,
  opts: { fileName?: string } = {},
): ShardIndex {
  const file = opts.fileName ?? 'model.safetensors.index.json';
  const json = typeof input === 'string' || input instanceof Uint8Array || input instanceof ArrayBuffer ? parseJson(input, file) : input;
  if (!isJsonObject(json)) throw new LowbitError('E_FORMAT', `${file}: not a JSON object`, { file });
  const wm = json['weight_map'];
  if (!isJsonObject(wm)) throw new LowbitError('E_FORMAT', `${file}: 'weight_map' is missing or not an object`, { file, key: 'weight_map' });
  const md = json['metadata'];
  if (md !== undefined && !isJsonObject(md)) throw new LowbitError('E_FORMAT', `${file}: 'metadata' is not an object`, { file, key: 'metadata' });
  const weightMap = new Map<string, string>();
  const shards: string[] = [];
  for (const key of Object.keys(wm)) {
    const shard = wm[key];
    if (typeof shard !== 'string' || shard === '' || /[/\\]/.test(shard) || shard === '.' || shard === '..') {
      throw new LowbitError('E_FORMAT', `${file}: weight_map['${key}'] = ${describeJson(shard)} is not a plain shard file name`, { file, key });
    }
    weightMap.set(key, shard);
    if (!shards.includes(shard)) shards.push(shard);
  }
  return { fileName: file, weightMap, metadata: md ?? {}, shards };
}

export interface ShardedCheckpoint {
  tensors: Map<string, RawTensor>;
  /** safetensors `__metadata__` of each shard (empty for .bin shards). */
  shardMetadata: Map<string, Record<string, string>>;
}

type ShardReader = (bytes: Uint8Array, fileName: string) => { tensors: Map<string, RawTensor>; metadata?: Record<string, string> };

async function loadSharded(
  index: ShardIndex | string | Uint8Array | Record<string, unknown>,
  fetchShard: (fileName: string) => Promise<Uint8Array | ArrayBuffer>,
  read: ShardReader,
  onShard?: (fileName: string, done: number, total: number) => void,
): Promise<ShardedCheckpoint> {
  const idx = isShardIndex(index) ? index : parseShardIndex(index);
  const tensors = new Map<string, RawTensor>();
  const shardMetadata = new Map<string, Record<string, string>>();
  let done = 0;
  for (const shard of idx.shards) {
    const raw = await fetchShard(shard);
    const bytes = raw instanceof Uint8Array ? raw : new Uint8Array(raw);
    const loaded = read(bytes, shard);
    shardMetadata.set(shard, loaded.metadata ?? {});
    for (const [key, file] of idx.weightMap) {
      if (file !== shard) continue;
      const t = loaded.tensors.get(key);
      if (t === undefined) {
        throw new LowbitError('E_KEY', `${idx.fileName}: '${key}' is mapped to ${shard}, which does not contain it`, { file: shard, key });
      }
      tensors.set(key, t);
    }
    onShard?.(shard, ++done, idx.shards.length);
  }
  return { tensors, shardMetadata };
}

function isShardIndex(v: unknown): v is ShardIndex {
  return isJsonObject(v) && v['weightMap'] instanceof Map;
}

/**
 * Loads a sharded safetensors checkpoint: fetches each shard named in the index once, in order, and returns the
 * tensors the weight map names (zero-copy views into the shard buffers). E_KEY when a shard lacks a mapped key.
 */
export function loadShardedSafetensors(
  index: ShardIndex | string | Uint8Array | Record<string, unknown>,
  fetchShard: (fileName: string) => Promise<Uint8Array | ArrayBuffer>,
  onShard?: (fileName: string, done: number, total: number) => void,
): Promise<ShardedCheckpoint> {
  return loadSharded(index, fetchShard, (b, f) => readSafetensors(b, { fileName: f }), onShard);
}

/** The same for `pytorch_model.bin.index.json` and its `.bin` shards (restricted reader). */
export function loadShardedTorchBin(
  index: ShardIndex | string | Uint8Array | Record<string, unknown>,
  fetchShard: (fileName: string) => Promise<Uint8Array | ArrayBuffer>,
  onShard?: (fileName: string, done: number, total: number) => void,
): Promise<ShardedCheckpoint> {
  return loadSharded(index, fetchShard, (b, f) => readTorchBin(b, { fileName: f }), onShard);
}
