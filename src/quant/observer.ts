// Calibration observers with PyTorch semantics (torch.ao.quantization.observer): MinMaxObserver,
// MovingAverageMinMaxObserver and their per-channel variants. An observer is a pure update
// function: `update(stats, batch)` returns a new statistics object; nothing is kept elsewhere.
//
//   min-max:        min ← min(min, batch min), max ← max(max, batch max)
//   moving average: first batch taken as-is; then min ← min + c·(batch min − min) (same for max),
//                   c = 0.01, each operation rounded to f32 as torch does on f32 tensors
// Per-channel variants reduce over every axis except `axis` (PyTorch's ch_axis, default 0).
// Empty batches are skipped (as PyTorch's `numel() == 0` early return). NaN/±∞ are E_NONFINITE.

import { LowbitError, fmtShape } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { qparamsFromRanges } from './range.js';
import { checkBits } from './formats.js';
import type { QParams } from './types.js';

const f = Math.fround;

/** Statistics carried across calibration batches. `axis` null: per tensor (min/max have 1 entry). */
export interface ObserverStats {
  observer: ObserverKind;
  axis: number | null;
  /** f32 running minimum per channel (1 entry per tensor). */
  min: Float32Array;
  max: Float32Array;
  /** Non-empty batches seen. */
  batches: number;
}

export type ObserverKind = 'minmax' | 'movingAverage';

export interface Observer {
  readonly kind: ObserverKind;
  readonly axis: number | null;
  readonly averagingConstant: number;
  /** A new stats object (stats = null for the first batch); never mutates its arguments. */
  update(stats: ObserverStats | null, batch: Tensor, batchIndex?: number): ObserverStats;
}

function batchRange(batch: Tensor, axis: number | null, batchIndex: number): { min: Float32Array; max: Float32Array } {
  if (batch.dtype !== 'f32' && batch.dtype !== 'f16') throw new LowbitError('E_DTYPE', `observer: batch must be f32 or f16, got ${batch.dtype}`);
  const x = (batch.dtype === 'f32' ? batch.contiguous({ heap: null }) : batch.astype('f32', { heap: null })).data as Float32Array;
  const nd = batch.ndim;
  let C = 1, inner = x.length;
  if (axis !== null) {
    const ax = axis < 0 ? axis + nd : axis;
    if (ax < 0 || ax >= nd) throw new LowbitError('E_ARG', `observer: axis ${axis} is out of range for batch shape ${fmtShape(batch.shape)}`);
    C = batch.shape[ax]!;
    inner = batch.shape.slice(ax + 1).reduce((a, b) => a * b, 1);
  }
  const mn = new Float32Array(C).fill(Infinity), mx = new Float32Array(C).fill(-Infinity);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (!Number.isFinite(v)) {
      throw new LowbitError('E_NONFINITE', `observer: batch ${batchIndex} element ${i} is ${v} (calibration data must be finite)`, { batch: batchIndex, index: i });
    }
    const c = C === 1 ? 0 : Math.floor(i / inner) % C;
    if (v < mn[c]!) mn[c] = v;
    if (v > mx[c]!) mx[c] = v;
  }
  return { min: mn, max: mx };
}

function makeObserver(kind: ObserverKind, axis: number | null, averagingConstant: number): Observer {
  if (axis !== null && !Number.isInteger(axis)) throw new LowbitError('E_ARG', `observer: axis must be an integer, got ${axis}`);
  if (!(averagingConstant > 0 && averagingConstant <= 1)) {
    throw new LowbitError('E_ARG', `observer: averagingConstant must be in (0, 1], got ${averagingConstant}`);
  }
  const c = f(averagingConstant);
  return {
    kind, axis, averagingConstant,
    update(stats, batch, batchIndex = stats?.batches ?? 0) {
      if (batch.size === 0) return stats ?? { observer: kind, axis, min: new Float32Array(0), max: new Float32Array(0), batches: 0 };
      const cur = batchRange(batch, axis, batchIndex);
      if (!stats || stats.batches === 0) return { observer: kind, axis, min: cur.min, max: cur.max, batches: 1 };
      if (stats.min.length !== cur.min.length) {
        throw new LowbitError('E_SHAPE', `observer: batch ${batchIndex} has ${cur.min.length} channels along axis ${axis}, earlier batches had ${stats.min.length}`);
      }
      const min = new Float32Array(cur.min.length), max = new Float32Array(cur.max.length);
      for (let i = 0; i < min.length; i++) {
        if (kind === 'minmax') {
          min[i] = Math.min(stats.min[i]!, cur.min[i]!);
          max[i] = Math.max(stats.max[i]!, cur.max[i]!);
        } else {
          min[i] = f(stats.min[i]! + f(c * f(cur.min[i]! - stats.min[i]!)));
          max[i] = f(stats.max[i]! + f(c * f(cur.max[i]! - stats.max[i]!)));
        }
      }
      return { observer: kind, axis, min, max, batches: stats.batches + 1 };
    },
  };
}

/** PyTorch MinMaxObserver (per tensor). */
export function minMaxObserver(): Observer {
  return makeObserver('minmax', null, 1);
}

/** PyTorch MovingAverageMinMaxObserver (per tensor), averaging constant 0.01 by default. */
export function movingAverageMinMaxObserver(opts: { averagingConstant?: number } = {}): Observer {
  return makeObserver('movingAverage', null, opts.averagingConstant ?? 0.01);
}

/** PyTorch PerChannelMinMaxObserver, channel axis 0 by default. */
export function perChannelMinMaxObserver(opts: { axis?: number } = {}): Observer {
  return makeObserver('minmax', opts.axis ?? 0, 1);
}

/** PyTorch MovingAveragePerChannelMinMaxObserver, channel axis 0 and averaging constant 0.01 by default. */
export function movingAveragePerChannelMinMaxObserver(opts: { axis?: number; averagingConstant?: number } = {}): Observer {
  return makeObserver('movingAverage', opts.axis ?? 0, opts.averagingConstant ?? 0.01);
}

/** Folds `observer` over the calibration batches. E_ARG for an empty calibration set. */
export function calibrate(observer: Observer, batches: Iterable<Tensor>): ObserverStats {
  let stats: ObserverStats | null = null;
  let i = 0;
  for (const b of batches) stats = observer.update(stats, b, i++);
  if (i === 0) throw new LowbitError('E_ARG', 'calibrate: batches is a zero-length calibration set');
  if (!stats || stats.batches === 0) throw new LowbitError('E_ARG', 'calibrate: every calibration batch is empty (zero elements)');
  return stats;
}

/** (scale, zero) per channel (or per tensor) from observer statistics (range widened to include 0). */
export function qparamsFromStats(stats: ObserverStats, bits: number, symmetric: boolean): QParams {
  checkBits(bits);
  if (stats.batches === 0) throw new LowbitError('E_ARG', 'qparamsFromStats: the observer has seen no data');
  return qparamsFromRanges(stats.min, stats.max, bits, symmetric);
}
