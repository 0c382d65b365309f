// Restricted reader for PyTorch `.bin`/`.pt` checkpoints in torch.save's zip format (torch >= 1.6, `torch/serialization.py`).
//
// Archive layout: `<prefix>/data.pkl` (the pickled state dict), `<prefix>/data/<key>` (one raw little-endian storage
// per key), `<prefix>/version`, optionally `<prefix>/byteorder`. The pickle runs on the restricted VM in pickle.ts.

import { LowbitError } from '../errors.js';
import { asBytes } from './bytes.js';
import { unpickleStateDict } from './pickle.js';
import { DTYPE_BYTES, type RawDtype, type RawTensor } from './tensor.js';
import { looksLikeZip, readZip, zipEntryData, type ZipArchive } from './zip.js';

export interface TorchBin {
  tensors: Map<string, RawTensor>;
}

export interface TorchReadOptions {
  /** Used in error messages; defaults to "pytorch_model.bin". */
  fileName?: string;
}

/** The `<prefix>/` of the single `<prefix>/data.pkl` in a torch.save archive. */
function findPrefix(zip: ZipArchive): string {
  const pkls = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length === 0) {
    throw new LowbitError('E_FORMAT', `${zip.fileName}: no '<name>/data.pkl' entry: not a torch.save zip checkpoint`, { file: zip.fileName });
  }
  if (pkls.length > 1) {
    throw new LowbitError('E_FORMAT', `${zip.fileName}: several pickles (${pkls.join(', ')}): not a single torch.save checkpoint`, { file: zip.fileName });
  }
  return pkls[0]!.slice(0, -'data.pkl'.length);
}

/**
 * Reads a torch.save zip checkpoint holding a flat state dict of float tensors. Contiguous tensors are zero-copy
 * views into `buf`; non-contiguous ones are copied out in row-major order. Nothing in the file is executed.
 */
export function readTorchBin(input: Uint8Array | ArrayBuffer, opts: TorchReadOptions = {}): TorchBin {
  const buf = asBytes(input);
  const file = opts.fileName ?? 'pytorch_model.bin';
  if (!looksLikeZip(buf)) {
    if (buf.byteLength >= 2 && buf[0] === 0x80 && buf[1] <= 5) {
      throw new LowbitError('E_UNSUPPORTED', `${file}: legacy (pre-1.6, non-zip) torch.save format; re-save it with a newer PyTorch or convert to safetensors`, { file });
    }
    throw new LowbitError('E_FORMAT', `${file}: not a zip archive (torch.save writes zip files since PyTorch 1.6)`, { file, offset: 0 });
  }
  const zip = readZip(buf, { fileName: file });
  const prefix = findPrefix(zip);

  const byteorder = zip.entries.get(`${prefix}byteorder`);
  if (byteorder !== undefined) {
    const text = new TextDecoder().decode(zipEntryData(zip, byteorder)).trim();
    if (text !== 'little') {
      throw new LowbitError('E_UNSUPPORTED', `${file}: storages are '${text}'-endian; only little-endian checkpoints are supported`, { file });
    }
  }

  const pklName = `${prefix}data.pkl`;
  const pkl = zipEntryData(zip, zip.entries.get(pklName)!);
  const storages = new Map<string, Uint8Array>();
  const loadStorage = (key: string, dtype: RawDtype, numel: number, offset: number): Uint8Array => {
    const where = `${file}:${pklName} byte ${offset}`;
    if (!/^[A-Za-z0-9_.-]+$/.test(key) || key === '.' || key === '..') {
      throw new LowbitError('E_FORMAT', `${where}: storage key '${key}' is not a plain file name`, { file, offset, key });
    }
    const name = `${prefix}data/${key}`;
    let bytes = storages.get(name);
    if (bytes === undefined) {
      const entry = zip.entries.get(name);
      if (entry === undefined) throw new LowbitError('E_FORMAT', `${where}: storage entry '${name}' is missing from the archive`, { file, offset, key });
      bytes = zipEntryData(zip, entry);
      storages.set(name, bytes);
    }
    const want = numel * DTYPE_BYTES[dtype];
    if (bytes.byteLength !== want) {
      throw new LowbitError('E_FORMAT', `${where}: storage '${name}' is ${bytes.byteLength} bytes but ${numel} ${dtype} elements need ${want}`, { file, offset, key });
    }
    return bytes;
  };

  const dict = unpickleStateDict(pkl, { fileName: `${file}:${pklName}`, loadStorage, maxMaterializeBytes: buf.byteLength });
  const tensors = new Map<string, RawTensor>();
  for (const [name, t] of dict) tensors.set(name, { name, dtype: t.dtype, shape: t.shape, bytes: t.bytes });
  return { tensors };
}
