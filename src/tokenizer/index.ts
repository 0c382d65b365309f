// Public entry of the byte-level BPE tokenizer (GPT-2 / OPT / RoBERTa).

export { Tokenizer, cleanUp } from './tokenizer.js';
export type { AddSpecial, DecodeOptions, EncodeOptions, FileContents, TokenizerOptions } from './tokenizer.js';
export { GPT2_PATTERN, bytesToUnicode, preTokenize, unicodeToBytes } from './bpe.js';
