// Byte-level BPE tokenizer for GPT-2 / OPT / RoBERTa vocabularies (HF GPT2Tokenizer, RobertaTokenizer; OPT prepends `</s>`).

import { LowbitError } from '../errors.js';
import { BpeMerger, GPT2_PATTERN, MergeTable, bytesToUnicode, unicodeToBytes, utf8Encode } from './bpe.js';

/** File contents as accepted by the factories: text, bytes, or an ArrayBuffer (browser `fetch`). */
export type FileContents = string | Uint8Array | ArrayBuffer;

/**
 * Which special ids `encode` adds around the text:
 * - `'opt'`     `[bos, ...ids]`, as HF's GPT2Tokenizer does for OPT (bos = `</s>` = 2 on OPT's vocab)
 * - `'roberta'` `[<s>, ...ids, </s>]`, as RobertaTokenizer does
 * - `'none'`    ids only, as GPT2Tokenizer does for GPT-2
 */
export type AddSpecial = 'opt' | 'roberta' | 'none';

export interface TokenizerOptions {
  /** Default `'opt'` when the vocab has `<s>` = 0 and `</s>` = 2 (OPT/RoBERTa layout), else `'none'`. */
  addSpecial?: AddSpecial;
  /** Id prepended in `'opt'` mode. Default: `</s>` if in the vocab, else `<|endoftext|>`. */
  bosId?: number;
  /** End-of-sequence id. Default: `</s>` if in the vocab, else `<|endoftext|>`. */
  eosId?: number;
  /** Padding id. Default: `<pad>` if in the vocab. */
  padId?: number;
  /**
   * Strings matched as whole tokens before BPE (they must be in the vocab; absent ones are ignored).
   * Default: `<s>`, `</s>`, `<pad>`, `<unk>`, `<|endoftext|>`, plus a tokenizer.json's `added_tokens`.
   */
  specialTokens?: string[];
  /** Prepend a space to the text before pre-tokenisation (RoBERTa's `add_prefix_space`). Default false. */
  addPrefixSpace?: boolean;
}

export interface EncodeOptions {
  /** Overrides the tokenizer's `addSpecial` for this call. */
  addSpecial?: AddSpecial;
}

export interface DecodeOptions {
  /** Drop special tokens (`<s>`, `</s>`, `<pad>`, ..., and added tokens marked special). Default false. */
  skipSpecialTokens?: boolean;
  /** HF's `clean_up_tokenization_spaces`: " ." → ".", " n't" → "n't", .... Default false (exact round trip). */
  cleanUpTokenizationSpaces?: boolean;
}

/** A whole-match token: content, id, and HF AddedToken flags. */
interface AddedToken { content: string; id: number; special: boolean; lstrip: boolean; rstrip: boolean }

const DEFAULT_SPECIALS = ['<s>', '</s>', '<pad>', '<unk>', '<|endoftext|>'];
const CACHE_MAX_WORDS = 1 << 16; // the merge cache is cleared when it holds this many words
const CACHE_MAX_LEN = 64; // pre-tokens longer than this (UTF-16 units) are not cached
const MAX_ID = 2 ** 24; // ids at or above this are rejected (real byte-level vocabs are < 2^18)
const MODES: readonly AddSpecial[] = ['opt', 'roberta', 'none'];
const MODE_LIST = "'opt', 'roberta' or 'none'";

/** E_FORMAT error whose message starts with the file (and line/key) at fault. */
function badFile(where: string, msg: string, details: Record<string, unknown> = {}): LowbitError {
  return new LowbitError('E_FORMAT', `${where}: ${msg}`, { where, ...details });
}

function toText(x: FileContents, file: string): string {
  if (typeof x === 'string') return x;
  if (x instanceof ArrayBuffer || x instanceof Uint8Array) {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(x);
    } catch {
      throw badFile(file, 'not valid UTF-8');
    }
  }
  throw new LowbitError('E_ARG', `${file}: expected a string, Uint8Array or ArrayBuffer, got ${typeof x}`, { file });
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badFile(file, `malformed JSON (${(e as Error).message})`);
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Validates a `{token: id}` map; every id must be a non-negative safe integer, used once. */
function parseVocab(v: unknown, file: string): Map<string, number> {
  if (!isObject(v)) throw badFile(file, 'vocab must be a JSON object of token → id');
  const vocab = new Map<string, number>();
  const seen = new Map<number, string>();
  for (const [tok, id] of Object.entries(v)) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0 || id >= MAX_ID)
      throw badFile(file, `token ${JSON.stringify(tok)} has id ${JSON.stringify(id)}, not an integer in [0, 2^24)`, { token: tok });
    const other = seen.get(id);
    if (other !== undefined)
      throw badFile(file, `id ${id} is used by both ${JSON.stringify(other)} and ${JSON.stringify(tok)}`, { id });
    seen.set(id, tok);
    vocab.set(tok, id);
  }
  return vocab;
}

/** Splits merges.txt into [a, b, line number] (the `#version` header and blank lines are skipped). */
function parseMergesTxt(text: string, file: string): [string, string, number][] {
  const out: [string, string, number][] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line === '' || (i === 0 && line.startsWith('#version'))) continue;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '')
      throw badFile(`${file} line ${i + 1}`, `expected "a b", got ${JSON.stringify(line)}`, { line: i + 1 });
    out.push([parts[0]!, parts[1]!, i + 1]);
  }
  return out;
}

/** tokenizer.json merges: "a b" strings (older files) or [a, b] pairs (newer files). */
function parseMergesJson(m: unknown, file: string): [string, string, number][] {
  if (!Array.isArray(m)) throw badFile(file, 'model.merges must be an array');
  return m.map((x, i): [string, string, number] => {
    const pair: unknown = typeof x === 'string' ? x.split(' ') : x;
    const ok = Array.isArray(pair) && pair.length === 2 && pair.every((t) => typeof t === 'string' && t !== '');
    if (!ok) throw badFile(file, `model.merges[${i}] is ${JSON.stringify(x)}, expected "a b" or ["a", "b"]`, { index: i });
    return [(pair as string[])[0]!, (pair as string[])[1]!, i];
  });
}

/**
 * Byte-level BPE tokenizer. Build it with `Tokenizer.fromFiles(vocabJson, mergesTxt, opts)` or
 * `Tokenizer.fromTokenizerJson(json, opts)`; both take file contents, never paths.
 *
 *   const tok = Tokenizer.fromFiles(vocabJson, mergesTxt);  // OPT files → addSpecial 'opt'
 *   tok.encode('hello world');                            // [2, 42891, 232]
 *   tok.decode([2, 42891, 232], { skipSpecialTokens: true }); // 'hello world'
 */
export class Tokenizer {
  /** Largest id + 1 over the vocab and added tokens: 50265 for OPT, whose embedding is padded to 50272. */
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  readonly unkId: number | undefined;
  readonly addSpecial: AddSpecial;

  private readonly vocab: Map<string, number>;
  private readonly tokens: (string | undefined)[]; // (vocabSize,) id → token, undefined in gaps
  private readonly byteIds = new Int32Array(256); // (256,) byte → id of its byte-level char
  private readonly tokenBytes: (Uint8Array | undefined)[]; // (vocabSize,) id → bytes, undefined for added tokens
  private readonly added: Map<string, AddedToken>; // content → added token
  private readonly addedById = new Map<number, AddedToken>();
  private readonly specialRe: RegExp | undefined;
  private readonly merger: BpeMerger;
  private readonly cache = new Map<string, number[]>(); // pre-token → ids
  private readonly addPrefixSpace: boolean;
  private buf: Uint8Array = new Uint8Array(1024); // UTF-8 scratch for one pre-token

  private constructor(
    vocab: Map<string, number>, merges: [string, string, number][], added: AddedToken[],
    files: { vocab: string; merges: string }, opts: TokenizerOptions,
  ) {
    this.vocab = vocab;
    let size = 0;
    for (const id of vocab.values()) size = Math.max(size, id + 1);
    for (const t of added) size = Math.max(size, t.id + 1);
    this.vocabSize = size;
    this.tokens = new Array(size);
    for (const [tok, id] of vocab) this.tokens[id] = tok;
    for (const t of added) {
      const prev = this.tokens[t.id];
      if (prev !== undefined && prev !== t.content)
        throw badFile(files.vocab, `id ${t.id} is both ${JSON.stringify(prev)} and added token ${JSON.stringify(t.content)}`, { id: t.id });
      this.tokens[t.id] = t.content;
    }

    const b2u = bytesToUnicode();
    for (let b = 0; b < 256; b++) {
      const id = vocab.get(b2u[b]!);
      if (id === undefined) throw badFile(files.vocab, `byte 0x${b.toString(16)} (${JSON.stringify(b2u[b])}) has no token; not a byte-level BPE vocab`);
      this.byteIds[b] = id;
    }
    const u2b = unicodeToBytes();
    this.tokenBytes = new Array(size);
    for (const [tok, id] of vocab) {
      const bytes = new Uint8Array(tok.length);
      let ok = true;
      for (let i = 0; i < tok.length; i++) {
        const c = tok.charCodeAt(i), b = c < 512 ? u2b[c]! : -1;
        if (b < 0) { ok = false; break; }
        bytes[i] = b;
      }
      if (ok) this.tokenBytes[id] = bytes;
    }

    const table = new MergeTable(size);
    for (const [a, b, line] of merges) {
      const ia = vocab.get(a), ib = vocab.get(b), im = vocab.get(a + b);
      const missing = ia === undefined ? a : ib === undefined ? b : im === undefined ? a + b : undefined;
      if (missing !== undefined) {
        const where = `${files.merges} ${files.merges.endsWith('.txt') ? 'line' : 'entry'} ${line}`;
        throw badFile(where, `merge "${a} ${b}" needs ${JSON.stringify(missing)}, which is not in ${files.vocab}`, { line });
      }
      table.add(ia!, ib!, im!);
    }
    if (table.size >= 2 ** 21) throw new LowbitError('E_UNSUPPORTED', `${files.merges}: ${table.size} merges; at most 2^21 are supported`);
    this.merger = new BpeMerger(table);

    this.added = new Map(added.map((t) => [t.content, t]));
    for (const name of opts.specialTokens ?? DEFAULT_SPECIALS) {
      const id = vocab.get(name);
      if (id !== undefined && !this.added.has(name)) this.added.set(name, { content: name, id, special: true, lstrip: false, rstrip: false });
    }
    for (const t of this.added.values()) this.addedById.set(t.id, t);
    const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const alts = [...this.added.keys()].sort((x, y) => y.length - x.length).map(escape);
    this.specialRe = alts.length > 0 ? new RegExp(alts.join('|'), 'g') : undefined;

    const id = (t: string) => this.added.get(t)?.id ?? vocab.get(t);
    const optLayout = vocab.get('<s>') === 0 && vocab.get('</s>') === 2;
    this.addSpecial = opts.addSpecial ?? (optLayout ? 'opt' : 'none');
    if (!MODES.includes(this.addSpecial)) throw new LowbitError('E_ARG', `addSpecial must be ${MODE_LIST}, got ${JSON.stringify(this.addSpecial)}`);
    this.bosId = this.checkId(opts.bosId, 'bosId') ?? id('</s>') ?? id('<|endoftext|>');
    this.eosId = this.checkId(opts.eosId, 'eosId') ?? id('</s>') ?? id('<|endoftext|>');
    this.padId = this.checkId(opts.padId, 'padId') ?? id('<pad>');
    this.unkId = id('<unk>');
    this.addPrefixSpace = opts.addPrefixSpace ?? false;
  }

  /** Builds a tokenizer from `vocab.json` and `merges.txt` contents (GPT-2's `encoder.json` / `vocab.bpe` too). */
  static fromFiles(vocabJson: FileContents, merges: FileContents, opts: TokenizerOptions = {}): Tokenizer {
    const vocab = parseVocab(parseJson(toText(vocabJson, 'vocab.json'), 'vocab.json'), 'vocab.json');
    const mergeList = parseMergesTxt(toText(merges, 'merges.txt'), 'merges.txt');
    return new Tokenizer(vocab, mergeList, [], { vocab: 'vocab.json', merges: 'merges.txt' }, opts);
  }

  /**
   * Builds a tokenizer from a HF `tokenizer.json` (contents or the parsed object). Needs
   * `model.type` "BPE" (or absent), no normalizer, and a ByteLevel pre-tokenizer (or none);
   * `added_tokens` are matched whole before BPE, with their `lstrip`/`rstrip` flags.
   */
  static fromTokenizerJson(json: FileContents | object, opts: TokenizerOptions = {}): Tokenizer {
    const F = 'tokenizer.json';
    const isContents = typeof json === 'string' || json instanceof Uint8Array || json instanceof ArrayBuffer;
    const j = isContents ? parseJson(toText(json, F), F) : json;
    if (!isObject(j) || !isObject(j.model)) throw badFile(F, 'missing "model" object');
    const m = j.model;
    const unsupported = (msg: string) => new LowbitError('E_UNSUPPORTED', `${F}: ${msg}`);
    if (m.type !== undefined && m.type !== 'BPE') throw unsupported(`model.type ${JSON.stringify(m.type)}; only "BPE" is supported`);
    if (j.normalizer != null) throw unsupported(`normalizer ${JSON.stringify((j.normalizer as { type?: unknown }).type)} is not supported`);
    const pre = j.pre_tokenizer as { type?: unknown; add_prefix_space?: unknown; use_regex?: unknown } | null | undefined;
    if (pre != null && (pre.type !== 'ByteLevel' || pre.use_regex === false))
      throw unsupported(`pre_tokenizer ${JSON.stringify(pre.type)} is not supported; only ByteLevel with the GPT-2 regex`);
    const vocab = parseVocab(m.vocab, `${F} model.vocab`);
    const merges = parseMergesJson(m.merges ?? [], F);
    const addedRaw = j.added_tokens ?? [];
    if (!Array.isArray(addedRaw)) throw badFile(F, 'added_tokens must be an array');
    const added = addedRaw.map((t: unknown, i): AddedToken => {
      const validId = isObject(t) && typeof t.id === 'number' && Number.isSafeInteger(t.id) && t.id >= 0 && t.id < MAX_ID;
      if (!validId || typeof t.content !== 'string' || t.content === '')
        throw badFile(F, `added_tokens[${i}] needs a non-empty "content" and an integer "id" in [0, 2^24)`, { index: i });
      const id = t.id as number, inVocab = vocab.get(t.content);
      if (inVocab !== undefined && inVocab !== id)
        throw badFile(F, `added_tokens[${i}] ${JSON.stringify(t.content)} has id ${id} but the vocab says ${inVocab}`, { index: i });
      return { content: t.content, id, special: t.special === true, lstrip: t.lstrip === true, rstrip: t.rstrip === true };
    });
    const files = { vocab: `${F} model.vocab`, merges: `${F} model.merges` };
    return new Tokenizer(vocab, merges, added, files, { addPrefixSpace: pre?.add_prefix_space === true, ...opts });
  }

  /** Id of `token`, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.added.get(token)?.id ?? this.vocab.get(token);
  }

  /** Token string of `id` (in GPT-2's byte-level alphabet, e.g. 'Ġworld'). Throws E_RANGE for unknown ids. */
  idToToken(id: number): string {
    this.checkDecodeId(id, 0);
    return this.tokens[id]!;
  }

  /** Token strings for `text` (no added bos/eos). */
  tokenize(text: string): string[] {
    return this.encode(text, { addSpecial: 'none' }).map((id) => this.tokens[id]!);
  }

  /** Encodes `text` to ids, adding special ids per `addSpecial` (default: the tokenizer's). */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new LowbitError('E_ARG', `encode: text must be a string, got ${typeof text}`);
    const mode = opts.addSpecial ?? this.addSpecial;
    const out: number[] = [];
    if (mode === 'opt') out.push(this.requireId(this.bosId, 'bosId', 'opt'));
    else if (mode === 'roberta') out.push(this.requireId(this.tokenToId('<s>'), '<s>', 'roberta'));
    else if (mode !== 'none') throw new LowbitError('E_ARG', `encode: addSpecial must be ${MODE_LIST}, got ${JSON.stringify(mode)}`);
    this.encodeWithSpecials(text, out);
    if (mode === 'roberta') out.push(this.requireId(this.tokenToId('</s>'), '</s>', 'roberta'));
    return out;
  }

  /** Decodes ids to text. Invalid UTF-8 (e.g. a split multi-byte character) becomes U+FFFD. */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    if (ids == null || typeof ids.length !== 'number')
      throw new LowbitError('E_ARG', `decode: ids must be an array of token ids, got ${ids === null ? 'null' : typeof ids}`);
    const skip = opts.skipSpecialTokens ?? false;
    const dec = new TextDecoder('utf-8');
    let text = '';
    let bytes = new Uint8Array(256), n = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      this.checkDecodeId(id, i);
      const added = this.addedById.get(id);
      if (added !== undefined || this.tokenBytes[id] === undefined) {
        if (skip && added?.special) continue;
        text += dec.decode(bytes.subarray(0, n)) + this.tokens[id]!;
        n = 0;
        continue;
      }
      const tb = this.tokenBytes[id]!;
      if (n + tb.length > bytes.length) {
        const grown = new Uint8Array(Math.max(bytes.length * 2, n + tb.length));
        grown.set(bytes.subarray(0, n));
        bytes = grown;
      }
      bytes.set(tb, n);
      n += tb.length;
    }
    text += dec.decode(bytes.subarray(0, n));
    return opts.cleanUpTokenizationSpaces ? cleanUp(text) : text;
  }

  // ---- internals

  private checkId(id: number | undefined, name: string): number | undefined {
    if (id !== undefined && (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.tokens[id] === undefined))
      throw new LowbitError('E_RANGE', `${name} ${id} is not a token id (vocab size ${this.vocabSize})`, { id });
    return id;
  }

  private requireId(id: number | undefined, name: string, mode: string): number {
    if (id === undefined) throw new LowbitError('E_ARG', `addSpecial '${mode}' needs ${name}, which this vocab does not have`);
    return id;
  }

  private checkDecodeId(id: number, index: number): void {
    if (typeof id !== 'number' || !Number.isInteger(id))
      throw new LowbitError('E_ARG', `token id ${String(id)} at index ${index} is not an integer`, { id, index });
    if (id < 0 || id >= this.vocabSize)
      throw new LowbitError('E_RANGE', `token id ${id} at index ${index} is out of range [0, ${this.vocabSize})`, { id, index });
    if (this.tokens[id] === undefined)
      throw new LowbitError('E_RANGE', `token id ${id} at index ${index} has no token in the vocab`, { id, index });
  }

  /** Splits on whole-match tokens (honouring lstrip/rstrip), BPE-encoding the text between. */
  private encodeWithSpecials(text: string, out: number[]): void {
    const re = this.specialRe;
    if (re === undefined) return this.encodeText(text, out);
    re.lastIndex = 0;
    let start = 0;
    let stripLeading = false;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const t = this.added.get(m[0])!;
      let seg = text.slice(start, m.index);
      if (stripLeading) seg = seg.trimStart();
      if (t.lstrip) seg = seg.trimEnd();
      this.encodeText(seg, out);
      out.push(t.id);
      start = m.index + m[0].length;
      stripLeading = t.rstrip;
    }
    let seg = text.slice(start);
    if (stripLeading) seg = seg.trimStart();
    this.encodeText(seg, out);
  }

  /** GPT-2 pre-tokenisation, then cached BPE per pre-token. */
  private encodeText(text: string, out: number[]): void {
    if (this.addPrefixSpace && text.length > 0 && text[0] !== ' ') text = ' ' + text;
    const re = new RegExp(GPT2_PATTERN); // own lastIndex: safe if called re-entrantly
    const cache = this.cache;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const word = m[0];
      let ids = cache.get(word);
      if (ids === undefined) {
        ids = this.bpeWord(word);
        if (word.length <= CACHE_MAX_LEN) {
          if (cache.size >= CACHE_MAX_WORDS) cache.clear();
          cache.set(word, ids);
        }
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    }
  }

  private bpeWord(word: string): number[] {
    const [buf, n] = utf8Encode(word, this.buf);
    this.buf = buf;
    const ids = new Int32Array(n);
    for (let i = 0; i < n; i++) ids[i] = this.byteIds[buf[i]!]!;
    return this.merger.merge(ids, n);
  }
}

/** HF `clean_up_tokenization`: removes the space before punctuation and English contractions. */
export function cleanUp(s: string): string {
  return s
    .replace(/ \./g, '.').replace(/ \?/g, '?').replace(/ !/g, '!').replace(/ ,/g, ',')
    .replace(/ ' /g, "'").replace(/ n't/g, "n't").replace(/ 'm/g, "'m").replace(/ 's/g, "'s")
    .replace(/ 've/g, "'ve").replace(/ 're/g, "'re");
}
