// Node-only entry (`lowbit/node`): load checkpoint folders by path. Kept apart from the main entry so
// browser bundles never see `node:fs`.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readFileBytesAsync } from './io/node.js';
import { loadOPTFolder as loadFolder, type FolderOptions, type LoadedFolder } from './models/opt/folder.js';

export { readFileBytes, readFileBytesAsync } from './io/node.js';

/**
 * Loads a Hugging Face OPT checkpoint folder from disk: config.json, weights (safetensors, sharded
 * safetensors, pytorch_model.bin, or sharded .bin) and, when present, the tokenizer files.
 */
export function loadOPTFolder(dir: string, opts: FolderOptions = {}): Promise<LoadedFolder> {
  return loadFolder(async (name) => {
    const p = join(dir, name);
    return existsSync(p) ? readFileBytesAsync(p) : null;
  }, dir, opts);
}
