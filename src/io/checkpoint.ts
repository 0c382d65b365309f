// Format sniffing for single-file checkpoints: torch.save zip archives start with "PK", safetensors with a u64 length.

import { asBytes } from './bytes.js';
import { readSafetensors } from './safetensors.js';
import type { RawTensor } from './tensor.js';
import { readTorchBin } from './torch.js';
import { looksLikeZip } from './zip.js';

export interface Checkpoint {
  format: 'safetensors' | 'torch';
  tensors: Map<string, RawTensor>;
  /** safetensors `__metadata__` (empty for torch files). */
  metadata: Record<string, string>;
}

/** Reads a safetensors or torch.save zip checkpoint, chosen by content, not by file name. */
export function readCheckpoint(input: Uint8Array | ArrayBuffer, opts: { fileName?: string } = {}): Checkpoint {
  const buf = asBytes(input);
  if (looksLikeZip(buf)) return { format: 'torch', tensors: readTorchBin(buf, opts).tensors, metadata: {} };
  const st = readSafetensors(buf, opts);
  return { format: 'safetensors', tensors: st.tensors, metadata: st.metadata };
}
