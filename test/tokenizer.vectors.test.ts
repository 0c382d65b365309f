// transformers.js tokenizer test vectors (GPT-2 and RoBERTa suites) checked against our GPT-2 and OPT/RoBERTa files.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Tokenizer, type AddSpecial } from '../src/tokenizer/index.js';

const dir = new URL('../../shared/data/tokenizers/', import.meta.url);
const read = (p: string) => readFileSync(new URL(p, dir));

interface Case { text: string; tokens?: string[]; ids?: number[]; decoded?: string }
type Config = Record<string, Record<string, Case>>;

/**
 * Evaluates one of the transformers.js test modules: drops its `import` lines, turns
 * `export const X` into `const X`, and returns the exported names. `scope` supplies the imports.
 */
function evalModule(src: string, scope: Record<string, unknown>): Record<string, unknown> {
  const names: string[] = [];
  const body = src
    .replace(/^import .*$/gm, '')
    .replace(/^export const (\w+)/gm, (_, n: string) => (names.push(n), `const ${n}`));
  return new Function(...Object.keys(scope), `${body}\nreturn { ${names.join(', ')} };`)(...Object.values(scope)) as Record<string, unknown>;
}

const strings = evalModule(read('testvectors/transformersjs_test_strings.js').toString('utf8'), {});
const scope = { ...strings, GPT2Tokenizer: 'GPT2Tokenizer', RobertaTokenizer: 'RobertaTokenizer' };
const suites = {
  gpt2: evalModule(read('testvectors/transformersjs_test_tokenization_gpt2.js').toString('utf8'), scope).TEST_CONFIG as Config,
  roberta: evalModule(read('testvectors/transformersjs_test_tokenization_roberta.js').toString('utf8'), scope).TEST_CONFIG as Config,
};

const gpt2 = Tokenizer.fromFiles(read('gpt2/encoder.json'), read('gpt2/vocab.bpe'));
const roberta = Tokenizer.fromFiles(read('opt/vocab.json'), read('opt/merges.txt')); // roberta-base vocab = OPT's

/** Models whose vocabulary we ship, and how transformers.js encodes with them. */
const checkable: Record<string, { tok: Tokenizer; addSpecial: AddSpecial }> = {
  'Xenova/gpt2': { tok: gpt2, addSpecial: 'none' },
  'openai-community/gpt2': { tok: gpt2, addSpecial: 'none' }, // the file aliases it to Xenova/gpt2
  'Xenova/all-distilroberta-v1': { tok: roberta, addSpecial: 'roberta' }, // distilroberta-base uses roberta-base's files
};
/** Models with their own vocabularies, not shipped in shared/data: their ids cannot be checked. */
const notShipped = [
  'Xenova/gpt-4', 'Xenova/gpt-4o', 'Xenova/claude-tokenizer', 'bigcode/santacoder', 'Xenova/CodeGPT-tokenizer',
  'huggingface-course/codeparrot-ds', 'jinaai/jina-embeddings-v2-base-de', 'jinaai/jina-embeddings-v2-base-code',
  'jinaai/jina-reranker-v1-tiny-en', 'jinaai/jina-embeddings-v2-base-zh', 'Xenova/EsperBERTo-small-pos', 'onnx-community/camembertv2-base',
];

describe('transformers.js test vectors', () => {
  it('every model in the files is either checked here or known to need a vocab we do not ship', () => {
    const models = [...Object.keys(suites.gpt2), ...Object.keys(suites.roberta)];
    expect(models.sort()).toEqual([...Object.keys(checkable), ...notShipped].sort());
    const count = (ms: string[]) => ms.reduce((n, m) => n + Object.keys(suites.gpt2[m] ?? suites.roberta[m]!).length, 0);
    const checked = count(Object.keys(checkable)), skipped = count(notShipped);
    const unique = checked - Object.keys(suites.gpt2['openai-community/gpt2']!).length;
    const all = Object.keys(checkable).flatMap((m) => Object.values(suites.gpt2[m] ?? suites.roberta[m]!));
    const has = (f: keyof Case) => all.filter((tc) => tc[f] !== undefined).length;
    console.log(`[tokenizer] transformers.js vectors: ${checked} cases checked (${unique} unique; openai-community/gpt2 repeats Xenova/gpt2; ids ${has('ids')}, tokens ${has('tokens')}, decoded ${has('decoded')}), ${skipped} cases in ${notShipped.length} models skipped (vocab not shipped)`);
    expect(checked).toBeGreaterThan(0);
  });

  for (const [suite, config] of Object.entries(suites)) {
    for (const [model, cases] of Object.entries(config)) {
      const c = checkable[model];
      if (c === undefined) continue;
      describe(`${suite}: ${model}`, () => {
        for (const [name, tc] of Object.entries(cases)) {
          it(name, () => {
            expect(tc.ids, 'every checked case has ids').toBeDefined();
            expect(c.tok.encode(tc.text, { addSpecial: c.addSpecial })).toEqual(tc.ids);
            if (tc.tokens !== undefined) expect(c.tok.tokenize(tc.text)).toEqual(tc.tokens);
            // transformers.js decodes with clean_up_tokenization_spaces=true for these models
            if (tc.decoded !== undefined) expect(c.tok.decode(tc.ids!, { cleanUpTokenizationSpaces: true })).toBe(tc.decoded);
            if (c.addSpecial === 'roberta') expect(c.tok.decode(tc.ids!.slice(1, -1))).toBe(tc.text);
            else expect(c.tok.decode(tc.ids!)).toBe(tc.text);
          });
        }
      });
    }
  }
});

describe('transformers.js modeling_opt', () => {
  it('"hello" → [2, 42891], "hello world" → [2, 42891, 232]', () => {
    const src = read('testvectors/transformersjs_test_modeling_opt.js').toString('utf8');
    expect(src).toContain('[[2n, 42891n, 39144n'); // generate() output starts with the prompt ids
    expect(src).toContain('[2n, 42891n, 232n, 24680n');
    const opt = Tokenizer.fromFiles(read('opt/vocab.json'), read('opt/merges.txt'));
    expect(opt.encode('hello')).toEqual([2, 42891]);
    expect(opt.encode('hello world')).toEqual([2, 42891, 232]);
    expect(opt.padId).toBe(1); // the left-padded batch row starts with 1
  });
});
