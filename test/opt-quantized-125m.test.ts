// Folding alone is exact on the OPT-125m shape too (12 layers, 12 heads, ffn 3072, outlier channels).

import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/runtime.js';
import { createRunState, forward, randomOPT } from '../src/models/opt/index.js';
import { QRunState, qforward } from '../src/models/opt/quantized.js';
import { quantizeOPT, rptqRecipe } from '../src/quant/rptq/index.js';

describe('RPTQ fold on the OPT-125m shape', () => {
  it('reorder folded into every layer (no quantization) leaves the logits unchanged within 1e-4 relative', async () => {
    const be = await createBackend('simd');
    const model = randomOPT({ backend: be, config: 'opt-125m', seed: 1, outliers: { count: 8 } });
    const calib = Int32Array.from({ length: 64 }, (_, i) => (i * 7919 + 5) % 50272);
    const qm = quantizeOPT(model, rptqRecipe('FP', { calibration: { samples: 1, seqLen: 16 }, kmeans: { nInit: 1 } }), { calibration: calib });
    expect(qm.parts.layers.every((l) => l.ln1Perm && l.ln2Perm && l.maps.r5)).toBe(true);
    const probe = [2, 100, 2000, 30000, 50000, 7, 8, 9];
    const fs = createRunState(model, { maxContext: 8, logitRows: 8 }), qs = new QRunState(qm, { maxContext: 8, logitRows: 8 });
    const a = forward(model, fs, probe, 0, { logits: 'all' }).slice();
    const b = qforward(qm, qs, probe, 0, { logits: 'all' });
    let err = 0, mx = 0;
    for (let i = 0; i < a.length; i++) { err = Math.max(err, Math.abs(a[i]! - b[i]!)); mx = Math.max(mx, Math.abs(a[i]!)); }
    expect(err / mx).toBeLessThan(1e-4);
    fs.dispose(); qs.dispose(); qm.dispose(); model.dispose();
  }, 120_000);
});
