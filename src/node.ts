// Node-only entry (`lowbit/node`): load checkpoint folders by path. Kept apart from the main entry so
// browser bundles never see `node:fs`.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readFileBytesAsync } from './io/node.js';
import { loadOPTFolder as loadFolder, loadTokenizer, type FileGetter, type FolderOptions, type LoadedFolder } from './models/opt/folder.js';
import type { Tokenizer, TokenizerOptions } from './tokenizer/index.js';

export { readFileBytes, readFileBytesAsync } from './io/node.js';

/**
 * Loads a Hugging Face OPT checkpoint folder from disk: config.json, weights (safetensors, sharded
 * safetensors, pytorch_model.bin, or sharded .bin) and, when present, the tokenizer files.
 */
export function loadOPTFolder(dir: string, opts: FolderOptions = {}): Promise<LoadedFolder> {
  return loadFolder(filesIn(dir), dir, opts);
}

/** The tokenizer files of folder `dir` (tokenizer.json, else vocab.json + merges.txt), or null when it has none. */
export function loadTokenizerFolder(dir: string, opts: TokenizerOptions = {}): Promise<Tokenizer | null> {
  return loadTokenizer(filesIn(dir), opts);
}

/** The files of folder `dir`; a missing one is null. */
function filesIn(dir: string): FileGetter {
  return async (name) => {
    const p = join(dir, name);
    return existsSync(p) ? readFileBytesAsync(p) : null;
  };
}
