// Writes a seeded random-weight OPT checkpoint folder in the Hugging Face layout (config.json + model.safetensors).
//
//   node dist/scripts/make-checkpoint.js --preset opt-125m --dtype F16 --seed 1 --out /tmp/opt-125m-random
//   options: --preset tiny|opt-125m|opt-350m|opt-350m-tiny  --dtype F32|F16|BF16  --seed N  --std X
//            --prefix model.decoder.|decoder.|none  --untied  --outliers N (channels, scale 20–50×)  --out DIR

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OPT_PRESETS, makeRandomCheckpoint, type RandomCheckpointOptions } from '../src/models/opt/random.js';

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

function main(): void {
  const args = process.argv.slice(2);
  const out = arg(args, 'out');
  const preset = arg(args, 'preset') ?? 'tiny';
  if (!out || args.includes('--help') || !(preset in OPT_PRESETS)) {
    process.stderr.write(`usage: make-checkpoint --out DIR [--preset ${Object.keys(OPT_PRESETS).join('|')}] [--dtype F32|F16|BF16] [--seed N] [--std X] [--prefix model.decoder.|decoder.|none] [--untied] [--outliers N]\n`);
    process.exitCode = 2;
    return;
  }
  const prefix = arg(args, 'prefix');
  const opts: RandomCheckpointOptions = {
    config: preset,
    dtype: (arg(args, 'dtype') ?? 'F32') as 'F32' | 'F16' | 'BF16',
    seed: Number(arg(args, 'seed') ?? 0),
    untiedLmHead: args.includes('--untied'),
  };
  const std = arg(args, 'std');
  if (std !== undefined) opts.std = Number(std);
  if (prefix !== undefined) opts.prefix = prefix === 'none' ? '' : (prefix as 'model.decoder.' | 'decoder.');
  const outliers = arg(args, 'outliers');
  if (outliers !== undefined) opts.outliers = { count: Number(outliers) };
  const ck = makeRandomCheckpoint(opts);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'config.json'), ck.configJson);
  writeFileSync(join(out, 'model.safetensors'), ck.safetensors);
  const summary = { out, preset, dtype: opts.dtype, seed: opts.seed, bytes: ck.safetensors.byteLength, tensors: ck.tensors.length, outlierChannels: ck.outlierChannels };
  process.stdout.write(JSON.stringify(summary) + '\n');
}

main();
