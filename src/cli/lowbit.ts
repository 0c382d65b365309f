// `lowbit`: the command line over the library, for a Hugging Face OPT checkpoint folder on disk.
//   lowbit quantize <hf-folder> -o <out.safetensors> [--preset W4A4KV] --calib <text file> ...   RPTQ, saved as safetensors
//   lowbit generate <model> --prompt <text> ...                                                   streams a continuation
//   lowbit ppl <model> --text <file> ...                                                          GPTQ/RPTQ perplexity protocol
//   lowbit info <model>                                                                           config, recipe, sizes
// <model> is a checkpoint folder (float) or a file written by `lowbit quantize` (its tokenizer files sit beside it).
// Errors are LowbitErrors printed with their code; unknown flags and bad values are usage errors (exit 2).
// The executable is bin.ts; `runCli` takes the arguments and where to write, so tests run it in process.

import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LowbitError } from '../errors.js';
import { init } from '../runtime.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { loadOPTFolder, loadTokenizerFolder } from '../node.js';
import { parseJson } from '../io/index.js';
import { configFromHF } from '../models/opt/config.js';
import { generateStream } from '../models/opt/generate.js';
import { evaluatePerplexity } from '../models/opt/perplexity.js';
import { loadQuantizedOPT, saveQuantizedOPT } from '../models/opt/qio.js';
import type { QuantizedOPT } from '../models/opt/quantized.js';
import { estimateMemory } from '../models/opt/memory.js';
import type { CausalLM } from '../models/opt/session.js';
import { CALIBRATION_PRESETS, KV_FLOATS, RECIPE_PRESETS, WEIGHT_GRANULARITIES, recipeToJSON, rptqRecipe, type ClassBits, type RecipePresetName, type WeightGranularity } from '../quant/rptq/recipe.js';
import { quantizeOPT } from '../quant/rptq/pipeline.js';

const USAGE = `usage:
  lowbit quantize <hf-folder> -o <out.safetensors> --calib <text file> [--preset ${RECIPE_PRESETS.join('|')}]
                  [--calibration reference|small] [--samples N] [--seqlen N] [--lmhead 16|8|4]
                  [--grid ${WEIGHT_GRANULARITIES.join('|')}] [--group N] [--method rtn|gptq] [--kvfloat f32|bf16] [--threads N]
  lowbit generate <model> --prompt <text> [--max-new 32] [--temperature 0] [--top-k 0] [--top-p 1] [--seed 0]
                  [--tokenizer <dir>] [--threads N]
  lowbit ppl <model> --text <file> [--seqlen 2048] [--windows N] [--tokenizer <dir>] [--threads N]
  lowbit info <model>
<model>: a Hugging Face OPT checkpoint folder, or a .safetensors file written by 'lowbit quantize'
(tokenizer files are looked for beside it unless --tokenizer says where).`;

class UsageError extends Error {}

/** Where the CLI writes: stdout (results, generated text) and stderr (progress, errors). */
export interface CliIO {
  out(s: string): void;
  err(s: string): void;
  /** Progress is rewritten in place on a terminal, printed as lines otherwise. */
  errTTY: boolean;
}

type Flags = Map<string, string>;

/** Positional arguments and --flags of one command; a flag not in `known` is a usage error. */
function parse(args: string[], known: readonly string[]): { pos: string[]; flags: Flags } {
  const pos: string[] = [], flags: Flags = new Map();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-o') { flags.set('out', need(args, i++, a)); continue; }
    if (!a.startsWith('--')) { pos.push(a); continue; }
    const name = a.slice(2);
    if (!known.includes(name)) throw new UsageError(`unknown option ${a}`);
    flags.set(name, need(args, i++, a));
  }
  return { pos, flags };
}

function need(args: string[], i: number, flag: string): string {
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value`);
  return v;
}

function num(flags: Flags, name: string, def: number, check: (v: number) => boolean, what: string): number {
  const s = flags.get(name);
  if (s === undefined) return def;
  const v = Number(s);
  if (s.trim() === '' || !Number.isFinite(v) || !check(v)) throw new UsageError(`--${name} must be ${what}, got '${s}'`);
  return v;
}

const int = (lo: number) => (v: number) => Number.isInteger(v) && v >= lo;

function one<T extends string>(flags: Flags, name: string, def: T, allowed: readonly T[]): T {
  const v = flags.get(name) ?? def;
  if (!allowed.includes(v as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
}

function onePos(pos: string[], what: string): string {
  if (pos.length !== 1) throw new UsageError(`expected one ${what}, got ${pos.length === 0 ? 'none' : pos.join(' ')}`);
  return pos[0]!;
}

async function start(flags: Flags, io: CliIO): Promise<void> {
  const threads = num(flags, 'threads', 1, int(1), 'a positive integer');
  const info = await init({ threads });
  io.err(`lowbit: backend ${info.name}${info.threads > 1 ? `, ${info.threads} threads` : ''}${info.notes.length ? ` (${info.notes.join('; ')})` : ''}\n`);
}

/** A float checkpoint folder or a quantized file, with its tokenizer (beside it, or from --tokenizer). */
async function loadModel(path: string, flags: Flags): Promise<{ model: CausalLM; tokenizer: Tokenizer }> {
  if (!existsSync(path)) throw new LowbitError('E_ARG', `no such file or folder: ${path}`);
  const isDir = statSync(path).isDirectory();
  const tokDir = flags.get('tokenizer') ?? (isDir ? path : dirname(path));
  // the tokenizer first: a missing one fails before the weights are read
  const tokenizer = await loadTokenizerFolder(tokDir);
  if (!tokenizer) throw new LowbitError('E_ARG', `no tokenizer in ${tokDir} (tokenizer.json, or vocab.json + merges.txt); pass --tokenizer <dir>`);
  const model: CausalLM = isDir ? (await loadOPTFolder(path)).model : loadQuantizedOPT(readFileSync(path), { fileName: basename(path) });
  return { model, tokenizer };
}

async function quantizeCmd(args: string[], io: CliIO): Promise<void> {
  const { pos, flags } = parse(args, ['out', 'calib', 'preset', 'calibration', 'samples', 'seqlen', 'lmhead', 'grid', 'group', 'method', 'kvfloat', 'threads']);
  const src = onePos(pos, 'checkpoint folder');
  const out = flags.get('out'), calibFile = flags.get('calib');
  if (!out) throw new UsageError('quantize needs -o <out.safetensors>');
  if (!calibFile) throw new UsageError('quantize needs --calib <text file> (calibration text, e.g. WikiText-2)');
  const preset = one(flags, 'preset', 'W4A4KV', RECIPE_PRESETS) as RecipePresetName;
  const cal = CALIBRATION_PRESETS[one(flags, 'calibration', 'reference', ['reference', 'small'] as const)];
  const calibration = {
    samples: num(flags, 'samples', cal.samples, int(1), 'a positive integer'),
    seqLen: num(flags, 'seqlen', cal.seqLen, int(2), 'an integer >= 2'),
    seed: 0,
  };
  const lmHead = num(flags, 'lmhead', 16, (v) => v === 16 || v === 8 || v === 4, '16, 8 or 4') as ClassBits;
  const weight: { granularity?: WeightGranularity; groupSize?: number; method?: 'rtn' | 'gptq' } = {};
  if (flags.has('grid')) weight.granularity = one(flags, 'grid', 'rowCluster', WEIGHT_GRANULARITIES);
  if (flags.has('group')) weight.groupSize = num(flags, 'group', 128, int(1), 'a positive integer');
  if (flags.has('method')) weight.method = one(flags, 'method', 'rtn', ['rtn', 'gptq'] as const);
  const kvFloat = one(flags, 'kvfloat', 'f32', KV_FLOATS);
  const recipe = rptqRecipe(preset, { calibration, bits: { lmHead }, weight, kvFloat });
  // every file problem before the long part: the calibration text is read, the output folder made
  const text = readFileSync(calibFile, 'utf8');
  if (existsSync(out) && statSync(out).isDirectory()) throw new UsageError(`-o ${out} is a folder; give the output file's name`);
  mkdirSync(dirname(out), { recursive: true });
  await start(flags, io);
  const { model, tokenizer } = await loadOPTFolder(src);
  let qm: QuantizedOPT | null = null;
  try {
    if (!tokenizer) throw new LowbitError('E_ARG', `no tokenizer in ${src} (tokenizer.json, or vocab.json + merges.txt): it is needed to tokenize the calibration text`);
    const ids = tokenizer.encode(text);
    io.err(`lowbit: ${preset} on ${src}: ${ids.length} calibration tokens, ${calibration.samples} samples × ${calibration.seqLen}\n`);
    const t0 = performance.now();
    const tty = io.errTTY;
    qm = quantizeOPT(model, recipe, {
      calibration: ids,
      onProgress: (p) => {
        const line = `lowbit: calibrating layer ${p.layer + 1}/${p.layers}, ${p.done}/${p.total} passes, ETA ${(p.etaMs / 1000).toFixed(0)} s`;
        if (tty) io.err(`\r${line}   `);
        else if (p.done === p.total || p.done % Math.max(1, Math.floor(p.total / 10)) === 0) io.err(line + '\n');
      },
    });
    if (tty) io.err('\n');
    const bytes = saveQuantizedOPT(qm);
    writeFileSync(out, bytes);
    // the tokenizer travels with the model, so `lowbit generate <out>` finds it
    const copied: string[] = [];
    for (const name of ['tokenizer.json', 'vocab.json', 'merges.txt']) {
      const from = join(src, name), to = join(dirname(out), name);
      if (existsSync(from) && !existsSync(to)) { copyFileSync(from, to); copied.push(name); }
    }
    const kv = kvBytesPerToken(qm);
    io.out(`${out}: ${(bytes.length / 1e6).toFixed(1)} MB, ${preset} in ${((performance.now() - t0) / 1000).toFixed(1)} s, ` +
      `KV cache ${kv} bytes per token${copied.length ? `; copied ${copied.join(', ')} beside it` : ''}\n`);
  } finally {
    qm?.dispose();
    model.dispose();
  }
}

async function generateCmd(args: string[], io: CliIO): Promise<void> {
  const { pos, flags } = parse(args, ['prompt', 'max-new', 'temperature', 'top-k', 'top-p', 'seed', 'tokenizer', 'threads']);
  const path = onePos(pos, 'model');
  const prompt = flags.get('prompt');
  if (prompt === undefined) throw new UsageError('generate needs --prompt <text>');
  const opts = {
    maxNewTokens: num(flags, 'max-new', 32, int(0), 'an integer >= 0'),
    temperature: num(flags, 'temperature', 0, (v) => v >= 0, 'a number >= 0'),
    topK: num(flags, 'top-k', 0, int(0), 'an integer >= 0'),
    topP: num(flags, 'top-p', 1, (v) => v > 0 && v <= 1, 'in (0, 1]'),
    seed: num(flags, 'seed', 0, int(0), 'an integer >= 0'),
  };
  await start(flags, io);
  const { model, tokenizer } = await loadModel(path, flags);
  try {
    io.out(prompt);
    for await (const piece of generateStream(model, tokenizer, prompt, opts)) io.out(piece.text);
    io.out('\n');
  } finally {
    model.dispose();
  }
}

async function pplCmd(args: string[], io: CliIO): Promise<void> {
  const { pos, flags } = parse(args, ['text', 'seqlen', 'windows', 'tokenizer', 'threads']);
  const path = onePos(pos, 'model');
  const textFile = flags.get('text');
  if (!textFile) throw new UsageError('ppl needs --text <file>');
  const seqLen = num(flags, 'seqlen', 2048, int(2), 'an integer >= 2');
  const windows = flags.has('windows') ? num(flags, 'windows', 0, int(1), 'a positive integer') : undefined;
  await start(flags, io);
  const { model, tokenizer } = await loadModel(path, flags);
  try {
    const ids = tokenizer.encode(readFileSync(textFile, 'utf8'));
    const r = await evaluatePerplexity(model, ids, {
      seqLen, ...(windows ? { maxWindows: windows } : {}),
      onProgress: (p) => io.err(`lowbit: window ${p.done}/${p.total}, ppl so far ${Math.exp(p.meanNll).toFixed(3)}, ETA ${(p.etaMs / 1000).toFixed(0)} s\n`),
    });
    io.out(`perplexity ${r.ppl.toFixed(4)} (mean NLL ${r.meanNll.toFixed(5)} nats over ${r.nPredicted} tokens, ${r.nWindows} windows of ${r.seqLen})\n`);
  } finally {
    model.dispose();
  }
}

async function infoCmd(args: string[], io: CliIO): Promise<void> {
  const { pos } = parse(args, []);
  const path = onePos(pos, 'model');
  if (!existsSync(path)) throw new LowbitError('E_ARG', `no such file or folder: ${path}`);
  await init();
  if (statSync(path).isDirectory()) {
    // the config and the tokenizer files say it all; the weights are not loaded
    const cfgFile = join(path, 'config.json');
    if (!existsSync(cfgFile)) throw new LowbitError('E_IO', `${path}: no config.json`);
    const c = configFromHF(parseJson(readFileSync(cfgFile), cfgFile));
    io.out(JSON.stringify({ kind: 'float OPT checkpoint', layers: c.nLayers, dim: c.dim, ffn: c.hiddenDim, heads: c.nHeads, vocab: c.vocabSize,
      maxPositions: c.maxPos, tokenizer: (await loadTokenizerFolder(path)) !== null }, null, 2) + '\n');
    return;
  }
  const qm = loadQuantizedOPT(readFileSync(path), { fileName: basename(path) });
  const c = qm.config;
  io.out(JSON.stringify({ kind: 'lowbit quantized OPT', bytes: statSync(path).size, layers: c.nLayers, dim: c.dim, ffn: c.hiddenDim, heads: c.nHeads,
    vocab: c.vocabSize, kvBytesPerToken: kvBytesPerToken(qm), recipe: JSON.parse(recipeToJSON(qm.recipe)) as unknown }, null, 2) + '\n');
  qm.dispose();
}

/** K + V bytes per cached token as the runtime stores them (f32 where the recipe keeps K/V in float): the estimator's. */
function kvBytesPerToken(qm: QuantizedOPT): number {
  return estimateMemory(qm.config, qm.recipe, { batch: 1, seqLen: 1, floatBytes: 4 }).detail.kvBytesPerToken;
}

const STDIO: CliIO = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), errTTY: process.stderr.isTTY === true };

/** Runs one `lowbit` command line (argv without node and the script); resolves to the exit code (0, 1 error, 2 usage). */
export async function runCli(argv: string[], io: CliIO = STDIO): Promise<number> {
  const [cmd, ...rest] = argv;
  const cmds: Record<string, (a: string[], io: CliIO) => Promise<void>> = { quantize: quantizeCmd, generate: generateCmd, ppl: pplCmd, info: infoCmd };
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') { io.out(USAGE + '\n'); return cmd === undefined ? 2 : 0; }
  const run = cmds[cmd];
  if (!run) { io.err(`lowbit: unknown command '${cmd}'\n${USAGE}\n`); return 2; }
  try {
    await run(rest, io);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) { io.err(`lowbit ${cmd}: ${e.message}\n${USAGE}\n`); return 2; }
    if (e instanceof LowbitError) { io.err(`lowbit ${cmd}: ${e.message}\n`); return 1; } // the message starts with its code
    // file system errors (a missing file, no permission) carry a code and the path: no stack trace for those
    const sys = e as NodeJS.ErrnoException;
    if (typeof sys?.code === 'string' && typeof sys.syscall === 'string') { io.err(`lowbit ${cmd}: ${sys.message}\n`); return 1; }
    throw e;
  }
}

