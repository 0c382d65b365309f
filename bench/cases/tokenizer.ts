// Tokenizer bench cases for `npm run bench`: OPT BPE load and WikiText-2 raw test encode (cold and warm merge cache).

import { readFileSync } from 'node:fs';
import { Tokenizer } from '../../src/tokenizer/index.js';
import { sharedDataDir } from '../data.js';
import type { BenchCase, BenchContext } from '../types.js';

/** Cases: build the OPT tokenizer; encode WikiText-2 (1.3 MB) with a fresh cache; encode it again warm. */
export function tokenizerCases(_ctx?: BenchContext): BenchCase[] {
  const dir = sharedDataDir();
  const vocab = readFileSync(new URL('tokenizers/opt/vocab.json', dir));
  const merges = readFileSync(new URL('tokenizers/opt/merges.txt', dir));
  const text = readFileSync(new URL('corpora/wikitext2_raw_test.txt', dir), 'utf8');
  const bytes = new TextEncoder().encode(text).length;
  const group = 'tokenizer OPT WikiText-2 raw test (1.3 MB)';
  let warm: Tokenizer | null = null;
  return [
    { group, impl: 'load vocab+merges', fn: () => void Tokenizer.fromFiles(vocab, merges) },
    { group, impl: 'load + encode (cold cache)', bytes, fn: () => void Tokenizer.fromFiles(vocab, merges).encode(text) },
    {
      group, impl: 'encode (warm cache)', bytes,
      setup: () => { warm ??= Tokenizer.fromFiles(vocab, merges); warm.encode(text); },
      fn: () => void warm!.encode(text),
    },
  ];
}
