// Loads a Hugging Face OPT checkpoint folder, as published on the Hub, through a file-getter, so the
// same code serves a local folder (src/node.ts) and a base URL in the browser (`loadOPTFromUrl`):
// config.json; model.safetensors, model.safetensors.index.json + shards, pytorch_model.bin or
// pytorch_model.bin.index.json + shards; tokenizer.json or vocab.json + merges.txt.

import { LowbitError } from '../../errors.js';
import { fetchBytes, loadShardedSafetensors, loadShardedTorchBin, parseJson, readCheckpoint } from '../../io/index.js';
import type { RawTensor } from '../../io/index.js';
import { Tokenizer, type TokenizerOptions } from '../../tokenizer/index.js';
import type { Backend } from '../../runtime.js';
import { loadOPT, type OPTModel } from './model.js';

/** Returns a file's bytes, or null when the folder has no such file. */
export type FileGetter = (name: string) => Promise<Uint8Array | null>;

export interface FolderOptions {
  backend?: Backend;
  tokenizer?: TokenizerOptions;
  /** Progress over weight files: (file, files done, total files). */
  onFile?: (file: string, done: number, total: number) => void;
}

export interface LoadedFolder {
  model: OPTModel;
  /** null when the folder has no tokenizer files. */
  tokenizer: Tokenizer | null;
  /** The weight file(s) the model came from. */
  weightFiles: string[];
}

const WEIGHT_FILES = ['model.safetensors.index.json', 'model.safetensors', 'pytorch_model.bin.index.json', 'pytorch_model.bin'];

export async function loadOPTFolder(get: FileGetter, where: string, opts: FolderOptions = {}): Promise<LoadedFolder> {
  const cfgBytes = await get('config.json');
  if (!cfgBytes) throw new LowbitError('E_IO', `${where}: no config.json`, { file: `${where}/config.json` });
  const config = parseJson(cfgBytes, `${where}/config.json`);
  let tensors: Map<string, RawTensor> | null = null;
  let weightFiles: string[] = [];
  for (const name of WEIGHT_FILES) {
    const bytes = await get(name);
    if (!bytes) continue;
    if (name.endsWith('.index.json')) {
      const shardGet = async (shard: string) => {
        const b = await get(shard);
        if (!b) throw new LowbitError('E_IO', `${where}: ${name} names shard ${shard}, which is missing`, { file: `${where}/${shard}` });
        return b;
      };
      const load = name.startsWith('model.') ? loadShardedSafetensors : loadShardedTorchBin;
      const sharded = await load(bytes, shardGet, opts.onFile);
      tensors = sharded.tensors;
      weightFiles = [...sharded.shardMetadata.keys()];
    } else {
      tensors = readCheckpoint(bytes, { fileName: `${where}/${name}` }).tensors;
      weightFiles = [name];
      opts.onFile?.(name, 1, 1);
    }
    break;
  }
  if (!tensors) throw new LowbitError('E_IO', `${where}: no weights (looked for ${WEIGHT_FILES.join(', ')})`, { file: where });
  const model = loadOPT(config, tensors, opts.backend ? { backend: opts.backend } : {});
  return { model, tokenizer: await loadTokenizer(get, opts.tokenizer), weightFiles };
}

/** A folder's tokenizer: tokenizer.json, else vocab.json + merges.txt; null when it has neither. */
export async function loadTokenizer(get: FileGetter, opts: TokenizerOptions = {}): Promise<Tokenizer | null> {
  const tj = await get('tokenizer.json');
  if (tj) return Tokenizer.fromTokenizerJson(tj, opts);
  const vocab = await get('vocab.json'), merges = await get('merges.txt');
  return vocab && merges ? Tokenizer.fromFiles(vocab, merges, opts) : null;
}

/** Loads a checkpoint folder served at `baseUrl` (browser or Node fetch). Missing files are HTTP 404s. */
export function loadOPTFromUrl(baseUrl: string | URL, opts: FolderOptions & { fetch?: typeof fetch } = {}): Promise<LoadedFolder> {
  const base = String(baseUrl).endsWith('/') ? String(baseUrl) : `${String(baseUrl)}/`;
  const f = opts.fetch ?? globalThis.fetch;
  const get: FileGetter = async (name) => {
    try {
      return await fetchBytes(new URL(name, base), { fetch: f });
    } catch (e) {
      if (e instanceof LowbitError && e.details?.['status'] === 404) return null;
      throw e;
    }
  };
  return loadOPTFolder(get, base, opts);
}
