// The exact OPT-125m shape: an F16 safetensors checkpoint from the random maker loads into the simd backend and runs.

import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/runtime.js';
import { createRunState, forward, loadOPT, makeRandomCheckpoint, weightBytes } from '../src/models/opt/index.js';

describe('OPT-125m shape', () => {
  it('loads an F16 checkpoint, runs prefill + a decode step with finite logits, KV step = full forward', async () => {
    const be = await createBackend('simd');
    let ck: ReturnType<typeof makeRandomCheckpoint> | null = makeRandomCheckpoint({ config: 'opt-125m', dtype: 'F16', seed: 1 });
    expect(ck.safetensors.byteLength).toBeGreaterThan(250e6);
    const m = loadOPT(ck.configJson, ck.safetensors, { backend: be });
    ck = null;
    expect(m.config).toMatchObject({ vocabSize: 50272, dim: 768, nLayers: 12, nHeads: 12, hiddenDim: 3072, maxPos: 2048 });
    expect(m.weights.posEmb.shape).toEqual([2050, 768]);
    // 125,239,296 parameters with the tied head (HF reports 125.2M)
    expect(weightBytes(m.weights) / 4).toBe(125239296);
    const toks = [2, 100, 2000, 30000, 50000, 7];
    const s = createRunState(m, { maxContext: 8, logitRows: 6 });
    const full = forward(m, s, toks, 0, { logits: 'all' }).slice();
    expect(full.length).toBe(6 * 50272);
    expect(full.every(Number.isFinite)).toBe(true);
    forward(m, s, toks.slice(0, 5), 0, { logits: 'none' });
    const step = forward(m, s, [7], 5);
    let err = 0, mx = 0;
    for (let i = 0; i < 50272; i++) { mx = Math.max(mx, Math.abs(full[5 * 50272 + i]!)); err = Math.max(err, Math.abs(step[i]! - full[5 * 50272 + i]!)); }
    expect(err / mx).toBeLessThan(1e-5);
    m.dispose();
  }, 60_000);
});
