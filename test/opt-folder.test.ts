// Loading OPT checkpoint folders by path (lowbit/node) and by URL, in every weight layout HF publishes.

import { beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, forward, createRunState, LowbitError, readSafetensors, writeSafetensors, loadOPTFromUrl } from '../src/index.js';
import { loadOPTFolder } from '../src/node.js';

const fixture = fileURLToPath(new URL('../../shared/data/fixtures/opt-tiny-torch/', import.meta.url));
const tokDir = fileURLToPath(new URL('../../shared/data/tokenizers/opt/', import.meta.url));

function lastLogits(m: Awaited<ReturnType<typeof loadOPTFolder>>['model']): Float32Array {
  const st = createRunState(m, { batch: 1, maxTokens: 4, maxContext: 4 });
  return Float32Array.from(forward(m, st, new Int32Array([2, 100, 200, 300]), 0, { logits: 'last' }));
}

describe('OPT checkpoint folders', () => {
  let want: Float32Array;
  const dirs: Record<string, string> = {};
  beforeAll(async () => {
    await init({ backend: 'simd' });
    const base = mkdtempSync(join(tmpdir(), 'lowbit-folder-'));
    const mk = (name: string) => {
      const d = join(base, name);
      mkdirSync(d);
      copyFileSync(join(fixture, 'config.json'), join(d, 'config.json'));
      return d;
    };
    dirs.st = mk('st');
    copyFileSync(join(fixture, 'model.safetensors'), join(dirs.st, 'model.safetensors'));
    copyFileSync(join(tokDir, 'vocab.json'), join(dirs.st, 'vocab.json'));
    copyFileSync(join(tokDir, 'merges.txt'), join(dirs.st, 'merges.txt'));
    dirs.bin = mk('bin');
    copyFileSync(join(fixture, 'pytorch_model.bin'), join(dirs.bin, 'pytorch_model.bin'));
    dirs.sharded = mk('sharded');
    const { tensors } = readSafetensors(readFileSync(join(fixture, 'model.safetensors')));
    const names = [...tensors.keys()].sort();
    const half = Math.ceil(names.length / 2);
    const weightMap: Record<string, string> = {};
    [names.slice(0, half), names.slice(half)].forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeFileSync(join(dirs.sharded!, file), writeSafetensors(part.map((n) => tensors.get(n)!)));
      for (const n of part) weightMap[n] = file;
    });
    writeFileSync(join(dirs.sharded, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    dirs.empty = mk('empty');
    want = lastLogits((await loadOPTFolder(dirs.st)).model);
  });

  it('loads safetensors, .bin and sharded folders to identical logits, with the tokenizer when present', async () => {
    const st = await loadOPTFolder(dirs.st!);
    expect(st.tokenizer?.encode('hello')).toEqual([2, 42891]);
    expect(st.weightFiles).toEqual(['model.safetensors']);
    for (const k of ['bin', 'sharded'] as const) {
      const seen: string[] = [];
      const f = await loadOPTFolder(dirs[k]!, { onFile: (file) => seen.push(file) });
      expect(f.tokenizer).toBeNull();
      expect(Array.from(lastLogits(f.model))).toEqual(Array.from(want));
      expect(seen.length).toBe(k === 'sharded' ? 2 : 1);
    }
  });

  it('loads from a base URL through fetch (404 = absent file)', async () => {
    const fakeFetch = async (url: string | URL) => {
      const p = join(dirs.st!, new URL(String(url)).pathname.split('/').pop()!);
      return existsSync(p) ? new Response(readFileSync(p)) : new Response('no', { status: 404, statusText: 'Not Found' });
    };
    const f = await loadOPTFromUrl('https://models.test/opt-tiny', { fetch: fakeFetch as typeof fetch });
    expect(Array.from(lastLogits(f.model))).toEqual(Array.from(want));
    expect(f.tokenizer).not.toBeNull();
  });

  it('a folder without weights or config is E_IO naming what is missing', async () => {
    const e = await loadOPTFolder(dirs.empty!).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LowbitError);
    expect((e as LowbitError).code).toBe('E_IO');
    expect((e as Error).message).toMatch(/no weights.*model\.safetensors/);
    const e2 = await loadOPTFolder(join(dirs.empty!, 'nope')).catch((x: unknown) => x);
    expect((e2 as Error).message).toMatch(/no config\.json/);
  });
});
