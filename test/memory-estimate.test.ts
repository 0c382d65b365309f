// estimateMemory: exact byte counts computed by hand (OPT-66b KV cache, the RPTQ paper's "saves over 900 GB"; tiny W4A16 weights).

import { describe, expect, it } from 'vitest';
import { configFromHF, estimateMemory, OPT_PRESETS } from '../src/models/opt/index.js';
import { rptqRecipe, baselineRecipe } from '../src/quant/rptq/index.js';

const opt66b = configFromHF({
  model_type: 'opt', hidden_size: 9216, num_hidden_layers: 64, num_attention_heads: 72, ffn_dim: 36864, vocab_size: 50272,
  max_position_embeddings: 2048, word_embed_proj_dim: 9216, do_layer_norm_before: true,
});

describe('estimateMemory', () => {
  it('OPT-66b at batch 64, seq 8192: KV 16-bit = 2·64·9216·8192·64·2 bytes; 4-bit saves over 900 GB', () => {
    const fp = estimateMemory(opt66b, rptqRecipe('W4A16'), { batch: 64, seqLen: 8192 });
    expect(fp.kvCache).toBe(2 * 64 * 9216 * 8192 * 64 * 2);
    expect(fp.kvCache).toBe(1_236_950_581_248);
    const kv4 = estimateMemory(opt66b, rptqRecipe('W4A4KV'), { batch: 64, seqLen: 8192 });
    // codes: 2·64·9216·8192·64·4/8; params: 64 layers × (K: 4·72 + V: 4·72 clusters) × (4 B scale + 1 B zero)
    // + i32 offsets (4·72 + 1 each for K and V)
    expect(kv4.detail.kvParams).toBe(64 * ((288 + 288) * 5 + (289 + 289) * 4));
    expect(kv4.detail.kvParams).toBe(332_288);
    expect(kv4.kvCache).toBe(2 * 64 * 9216 * 8192 * 64 / 2 + 332_288);
    expect(kv4.kvCache).toBe(309_237_977_600);
    expect(fp.kvCache - kv4.kvCache).toBeGreaterThan(900e9);
    expect(fp.kvCache - kv4.kvCache).toBe(927_712_603_648);
    const kv3 = estimateMemory(opt66b, rptqRecipe('W4A3KV'), { batch: 64, seqLen: 8192 });
    expect(kv3.kvCache).toBe(2 * 64 * 9216 * 8192 * 64 * 3 / 8 + 332_288); // 9216 = 72 u3 blocks of 128 codes
  });

  it('tiny W4A16 weights, by hand (per row × input cluster)', () => {
    const c = configFromHF(OPT_PRESETS['tiny']!);
    const e = estimateMemory(c, rptqRecipe('W4A16', { weight: { granularity: 'rowCluster' } }), { batch: 1, seqLen: 128 });
    // per layer: q/k/v 64 rows × 32 B (u4) + 64 × 32 R1 clusters × 5 B; out_proj 64 × 32 + 64 × 16 (4/head × 4 heads) × 5;
    // fc1 256 × 32 + 256 × 32 × 5; fc2 64 × 128 + 64 × 32 × 5; plus i32 segment offsets (33, 17, 33, 33 entries)
    const layer = 3 * (64 * 32 + 64 * 32 * 5 + 33 * 4) + (64 * 32 + 64 * 16 * 5 + 17 * 4) + (256 * 32 + 256 * 32 * 5 + 33 * 4) + (64 * 128 + 64 * 32 * 5 + 33 * 4);
    expect(e.detail.linears).toBe(2 * layer);
    expect(e.detail.linears).toBe(224_688);
    expect(e.detail.floatParams).toBe(2 * (5 * 64 + 256 + 4 * 64) * 2);
    expect(e.detail.embeddings).toBe((512 * 64 + 130 * 64 + 2 * 64) * 2);
    // perms: R1..R4 4·64 + R5 256 int32; offsets: (32+1) + (16+1) + (16+1) + (32+1) + (32+1)
    expect(e.detail.clusterMaps).toBe(2 * 4 * (4 * 64 + 256 + 33 + 17 + 17 + 33 + 33));
    expect(e.detail.lmHead).toBe(0);
    expect(e.weights).toBe(224_688 + 3_328 + 82_432 + 5_160);
    // activations: f32 x/xb/q/k/v (5·128·64) + hb 128·256 + scores 4 heads × 128 + logits 512, ids/pos i32
    expect(e.activations).toBe(4 * (5 * 128 * 64 + 128 * 256 + 4 * 128 + 512) + 2 * 128 * 4);
    const b = estimateMemory(c, baselineRecipe(rptqRecipe('W4A16'), 'tensor'), { batch: 1, seqLen: 128 });
    expect(b.detail.clusterMaps).toBe(0);
    expect(b.detail.linears).toBe(2 * (3 * (64 * 32 + 64 * 5 + 8) + (64 * 32 + 64 * 5 + 8) + (256 * 32 + 256 * 5 + 8) + (64 * 128 + 64 * 5 + 8)));
  });

  it("tiny W4A16 linears per row × group (the 'group' grid option), by hand", () => {
    const grp = (o: { groupSize?: number } = {}) => rptqRecipe('W4A16', { weight: { granularity: 'group', ...o } });
    const c = configFromHF(OPT_PRESETS['tiny']!);
    // groups of 128: q/k/v/out_proj/fc1 (64 inputs) one group per row, 2 offsets; fc2 (256 inputs) two groups, 3 offsets
    const g128 = estimateMemory(c, grp(), { batch: 1, seqLen: 128 });
    const layer = 4 * (64 * 32 + 64 * 5 + 2 * 4) + (256 * 32 + 256 * 5 + 2 * 4) + (64 * 128 + 64 * 2 * 5 + 3 * 4);
    expect(g128.detail.linears).toBe(2 * layer);
    expect(g128.detail.linears).toBe(55_656);
    // groups of 32: 2 per row of the 64-input linears (3 offsets), 8 per row of fc2 (9 offsets)
    const g32 = estimateMemory(c, grp({ groupSize: 32 }), { batch: 1, seqLen: 128 });
    expect(g32.detail.linears).toBe(2 * (4 * (64 * 32 + 64 * 2 * 5 + 3 * 4) + (256 * 32 + 256 * 2 * 5 + 3 * 4) + (64 * 128 + 64 * 8 * 5 + 9 * 4)));
    // OPT-125m: 768 / 128 = 6 groups, 3072 / 128 = 24; vs 32 clusters per row for every linear
    const c125 = configFromHF(OPT_PRESETS['opt-125m']!);
    const g125 = estimateMemory(c125, grp(), { batch: 1, seqLen: 1 }).detail.linears;
    const clu = estimateMemory(c125, rptqRecipe('W4A16'), { batch: 1, seqLen: 1 }).detail.linears;
    const codes = 12 * (4 * 768 * 384 + 3072 * 384 + 768 * 1536);
    expect(g125).toBe(codes + 12 * (4 * 768 * 6 * 5 + 3072 * 6 * 5 + 768 * 24 * 5 + 5 * 7 * 4 + 25 * 4));
    // q/k/v 32 R1 clusters, out_proj 48 (4 per head), fc1 32 R4, fc2 32 R5
    expect(clu - codes).toBe(12 * (3 * 768 * 32 * 5 + 768 * 48 * 5 + 3072 * 32 * 5 + 768 * 32 * 5 + 3 * 33 * 4 + 49 * 4 + 33 * 4 + 33 * 4));
  });

  it('an 8-bit LM head is packed per (row × group of 128)', () => {
    const c = configFromHF(OPT_PRESETS['opt-125m']!);
    const e = estimateMemory(c, rptqRecipe('W4A16', { bits: { lmHead: 8 } }), { batch: 1, seqLen: 1 });
    expect(e.detail.lmHead).toBe(50272 * 768 + 50272 * 6 * 5 + 7 * 4);
  });

  it('bad arguments are E_ARG', () => {
    const c = configFromHF(OPT_PRESETS['tiny']!);
    expect(() => estimateMemory(c, rptqRecipe('W4A16'), { batch: 0, seqLen: 1 })).toThrow(/E_ARG.*batch/);
  });
});
