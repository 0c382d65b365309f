// The `lowbit` command line, run in process on a small HF-layout checkpoint folder with OPT's real vocabulary:
// quantize → info → generate → ppl agree with the library, and bad command lines fail with a message and exit code.

import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliIO } from '../src/cli/lowbit.js';
import { makeRandomCheckpoint, OPT_PRESETS } from '../src/models/opt/random.js';
import { loadQuantizedOPT } from '../src/models/opt/qio.js';
import { generate } from '../src/models/opt/generate.js';
import { evaluatePerplexity } from '../src/models/opt/perplexity.js';
import { Tokenizer } from '../src/tokenizer/index.js';
import { currentBackend } from '../src/runtime.js';

const ASSETS = new URL('../assets/', import.meta.url);
const TEXT = new URL('text/wikitext2-test-excerpt.txt', ASSETS).pathname;

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const io: CliIO = { out: (s) => { out += s; }, err: (s) => { err += s; }, errTTY: false };
  const code = await runCli(argv, io);
  return { code, out, err };
}

describe('lowbit CLI', () => {
  let dir: string, src: string, bare: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lowbit-cli-'));
    src = join(dir, 'opt-small'); bare = join(dir, 'no-tokenizer');
    mkdirSync(src); mkdirSync(bare);
    const ck = makeRandomCheckpoint({
      config: { ...OPT_PRESETS['opt-125m'], hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, ffn_dim: 256, word_embed_proj_dim: 64, max_position_embeddings: 256 },
      seed: 1, dtype: 'F16', outliers: { count: 4 },
    });
    for (const d of [src, bare]) { writeFileSync(join(d, 'config.json'), ck.configJson); writeFileSync(join(d, 'model.safetensors'), ck.safetensors); }
    for (const f of ['vocab.json', 'merges.txt']) copyFileSync(new URL(`opt-tokenizer/${f}`, ASSETS), join(src, f));
  });
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  it('quantize → info → generate → ppl: the file reloads, and generate/ppl equal the library on the same file', async () => {
    const out = join(dir, 'q', 'model.safetensors');
    const q = await cli('quantize', src, '-o', out, '--calib', TEXT, '--preset', 'W4A4KV', '--samples', '2', '--seqlen', '64');
    expect(q.err).toContain('calibrating layer 2/2');
    expect(q.code).toBe(0);
    expect(q.out).toContain('KV cache 128 bytes per token'); // 2 layers × (K + V) × one 64-channel u4 row
    expect(existsSync(join(dir, 'q', 'vocab.json')) && existsSync(join(dir, 'q', 'merges.txt'))).toBe(true);

    // GPTQ on the preset's grid: per (row × input cluster), the clusters as GPTQ's groups
    const gq = await cli('quantize', src, '-o', join(dir, 'g', 'model.safetensors'), '--calib', TEXT, '--method', 'gptq', '--samples', '2', '--seqlen', '64');
    expect(gq.code).toBe(0);
    const gmeta = JSON.parse((await cli('info', join(dir, 'g', 'model.safetensors'))).out) as { recipe: { weight: { method: string; granularity: string } } };
    expect(gmeta.recipe.weight).toMatchObject({ method: 'gptq', granularity: 'rowCluster' });

    const info = await cli('info', out);
    expect(info.code).toBe(0);
    const meta = JSON.parse(info.out) as { recipe: { name: string; bits: { kv: number }; calibration: { samples: number } }; kvBytesPerToken: number };
    expect(meta.recipe.name).toBe('W4A4KV');
    expect(meta.recipe.bits.kv).toBe(4);
    expect(meta.recipe.calibration.samples).toBe(2);
    expect(meta.kvBytesPerToken).toBe(128);

    const tok = Tokenizer.fromFiles(readFileSync(join(src, 'vocab.json')), readFileSync(join(src, 'merges.txt')));
    const qm = loadQuantizedOPT(readFileSync(out), { backend: currentBackend() });
    try {
      const opts = { maxNewTokens: 8, temperature: 0.7, topK: 20, seed: 4 };
      const g = await cli('generate', out, '--prompt', 'The tower is', '--max-new', '8', '--temperature', '0.7', '--top-k', '20', '--seed', '4');
      expect(g.code).toBe(0);
      expect(g.out).toBe('The tower is' + (await generate(qm, tok, 'The tower is', opts)) + '\n');

      const p = await cli('ppl', out, '--text', TEXT, '--seqlen', '64', '--windows', '2');
      expect(p.code).toBe(0);
      const r = await evaluatePerplexity(qm, tok.encode(readFileSync(TEXT, 'utf8')), { seqLen: 64, maxWindows: 2 });
      expect(p.out).toContain(`perplexity ${r.ppl.toFixed(4)}`);
      expect(p.out).toContain('2 windows of 64');
    } finally {
      qm.dispose();
    }
    // the float folder runs the same commands
    const gf = await cli('generate', src, '--prompt', 'Hello', '--max-new', '3');
    expect(gf.code).toBe(0);
    expect(gf.out.startsWith('Hello')).toBe(true);
    expect(JSON.parse((await cli('info', src)).out)).toMatchObject({ kind: 'float OPT checkpoint', layers: 2, dim: 64, tokenizer: true });
  });

  it('bad command lines: usage errors exit 2, failures exit 1, each with a message naming the problem', async () => {
    const cases: Array<[string[], number, string]> = [
      [[], 2, 'usage:'],
      [['shrink', src], 2, "unknown command 'shrink'"],
      [['quantize', src, '-o', join(dir, 'x.safetensors'), '--calib', TEXT, '--bogus', '1'], 2, 'unknown option --bogus'],
      [['quantize', src, '-o', join(dir, 'x.safetensors')], 2, 'quantize needs --calib'],
      [['quantize', src, '--calib', TEXT], 2, 'quantize needs -o'],
      [['quantize', src, '-o', join(dir, 'x.safetensors'), '--calib', TEXT, '--preset', 'W2A2'], 2, '--preset must be one of FP, W4A16'],
      [['quantize', src, '-o', join(dir, 'x.safetensors'), '--calib', TEXT, '--lmhead', '5'], 2, '--lmhead must be 16, 8 or 4'],
      [['quantize', src, '-o', join(dir, 'x.safetensors'), '--calib', TEXT, '--kvfloat', 'f16'], 2, '--kvfloat must be one of f32, bf16'],
      [['quantize', src, '-o', join(dir, 'x.safetensors'), '--calib', TEXT, '--kvfloat', 'bf16'], 1,
        "E_ARG: recipe.kvFloat is 'bf16' but recipe.bits.kv is 4"],
      [['quantize', src, '-o', dir, '--calib', TEXT], 2, 'is a folder'],
      [['quantize', src, '-o', join(dir, 'x.safetensors'), '--calib', join(dir, 'missing.txt')], 1, 'missing.txt'],
      [['quantize', bare, '-o', join(dir, 'x.safetensors'), '--calib', TEXT, '--samples', '1', '--seqlen', '16'], 1, 'E_ARG: no tokenizer in'],
      [['generate', src], 2, 'generate needs --prompt'],
      [['generate', src, '--prompt', 'a', '--temperature', '-1'], 2, '--temperature must be a number >= 0'],
      [['generate', join(dir, 'nope'), '--prompt', 'a'], 1, 'no such file or folder'],
      [['generate', join(src, 'config.json'), '--prompt', 'a'], 1, 'E_FORMAT'],
      [['generate', bare, '--prompt', 'a'], 1, 'pass --tokenizer <dir>'],
      [['ppl', src, '--text', TEXT, '--seqlen', '4096'], 1, 'exceeds max_position_embeddings'],
      [['quantize', src, '-o', join(dir, 'x.safetensors'), '--calib', TEXT, '--grid', 'group', '--group', '48'], 1,
        'lowbit quantize: E_ARG: recipe.weight.groupSize 48'],
      [['info', src, 'extra'], 2, 'expected one model'],
    ];
    for (const [argv, code, msg] of cases) {
      const r = await cli(...argv);
      expect({ argv, code: r.code }).toEqual({ argv, code });
      expect(r.out + r.err).toContain(msg);
    }
    expect(existsSync(join(dir, 'x.safetensors'))).toBe(false);
  });
});
