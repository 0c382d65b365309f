// Scheme validation and the mapping of each granularity onto the kernels' [rows, cols] + segments view.

import { LowbitError, fmtShape } from '../errors.js';
import { checkBits } from './formats.js';
import { validateClusterMap } from './rptq/cluster-map.js';
import type { ClusterMap, Granularity, QuantLayout, QuantScheme, RangeMethod } from './types.js';

/** Throws E_ARG naming the offending field unless `scheme` is well formed (cluster maps are checked by `layoutOf`). */
export function validateScheme(scheme: QuantScheme): void {
  if (!scheme || typeof scheme !== 'object') throw new LowbitError('E_ARG', 'scheme must be {bits, symmetric, granularity, range?}');
  checkBits(scheme.bits, 'scheme.bits');
  if (typeof scheme.symmetric !== 'boolean') throw new LowbitError('E_ARG', `scheme.symmetric must be a boolean, got ${String(scheme.symmetric)}`);
  validateRange(scheme.range ?? { kind: 'minmax' });
  const g = scheme.granularity as Granularity | undefined;
  switch (g?.kind) {
    case 'perTensor': case 'perToken': case 'perCluster': case 'perRowCluster': break;
    case 'perChannel':
      if (!Number.isInteger(g.axis)) throw new LowbitError('E_ARG', `scheme.granularity.axis must be an integer, got ${g.axis}`);
      break;
    case 'perGroup':
      if (!Number.isSafeInteger(g.groupSize) || g.groupSize < 1) {
        throw new LowbitError('E_ARG', `scheme.granularity.groupSize must be a positive integer, got ${g.groupSize}`);
      }
      break;
    default:
      throw new LowbitError('E_ARG', `scheme.granularity.kind must be perTensor, perChannel, perGroup, perToken, perCluster or perRowCluster, got ${String((g as { kind?: unknown } | undefined)?.kind)}`);
  }
}

export function validateRange(r: RangeMethod): void {
  switch (r?.kind) {
    case 'minmax': return;
    case 'mse': {
      const grid = r.grid ?? 100, shrink = r.maxShrink ?? 0.8, norm = r.norm ?? 2.4;
      if (!Number.isSafeInteger(grid) || grid < 1) throw new LowbitError('E_ARG', `range.grid must be a positive integer, got ${grid}`);
      if (!(shrink > 0 && shrink <= 1)) throw new LowbitError('E_ARG', `range.maxShrink must be in (0, 1], got ${shrink}`);
      if (!(norm > 0 && Number.isFinite(norm))) throw new LowbitError('E_ARG', `range.norm must be finite and > 0, got ${norm}`);
      return;
    }
    case 'percentile':
      if (!(r.p > 50 && r.p <= 100)) throw new LowbitError('E_ARG', `range.p must be in (50, 100], got ${r.p}`);
      return;
    default:
      throw new LowbitError('E_ARG', `range.kind must be minmax, mse or percentile, got ${String((r as { kind?: unknown } | undefined)?.kind)}`);
  }
}

function clusterLayout(map: ClusterMap, cols: number, what: string): { offsets: Int32Array; perm: Int32Array | null } {
  const k = map?.offsets?.length ? map.offsets.length - 1 : 0;
  if (k > cols) throw new LowbitError('E_ARG', `${what}: cluster count ${k} is larger than the channel count ${cols}`);
  validateClusterMap(map, cols, what);
  let identity = true;
  for (let j = 0; j < cols && identity; j++) identity = map.perm[j] === j;
  return { offsets: map.offsets, perm: identity ? null : map.perm };
}

/** The [rows, cols] + segments view of a tensor of `shape` under `g` (see QuantLayout). */
export function layoutOf(shape: readonly number[], g: Granularity): QuantLayout {
  const nd = shape.length;
  const cols0 = nd === 0 ? 1 : shape[nd - 1]!;
  const size = shape.reduce((a, b) => a * b, 1);
  const lead = cols0 === 0 ? (nd <= 1 ? 1 : shape.slice(0, -1).reduce((a, b) => a * b, 1)) : size / cols0;
  const range = (n: number) => Int32Array.from({ length: n + 1 }, (_, i) => i);
  const single = (cols: number) => Int32Array.from([0, cols]);
  switch (g.kind) {
    case 'perTensor': return { rows: lead, cols: cols0, offsets: single(cols0), rowPeriod: 1, perm: null };
    case 'perToken': return { rows: lead, cols: cols0, offsets: single(cols0), rowPeriod: Math.max(1, lead), perm: null };
    case 'perChannel': {
      const ax = g.axis < 0 ? g.axis + nd : g.axis;
      if (nd === 0 || ax < 0 || ax >= nd) throw new LowbitError('E_ARG', `scheme.granularity.axis ${g.axis} is out of range for shape ${fmtShape(shape)}`);
      if (ax === nd - 1) return { rows: lead, cols: cols0, offsets: range(cols0), rowPeriod: 1, perm: null };
      const C = shape[ax]!, inner = shape.slice(ax + 1).reduce((a, b) => a * b, 1);
      const outer = shape.slice(0, ax).reduce((a, b) => a * b, 1);
      return { rows: outer * C, cols: inner, offsets: single(inner), rowPeriod: Math.max(1, C), perm: null };
    }
    case 'perGroup': {
      if (cols0 % g.groupSize !== 0) {
        throw new LowbitError('E_ARG', `scheme.granularity.groupSize ${g.groupSize} does not divide the last dim ${cols0} of ${fmtShape(shape)} (no padding: pick a divisor)`);
      }
      const n = cols0 / g.groupSize;
      return { rows: lead, cols: cols0, offsets: Int32Array.from({ length: n + 1 }, (_, i) => i * g.groupSize), rowPeriod: Math.max(1, lead), perm: null };
    }
    case 'perCluster': case 'perRowCluster': {
      const { offsets, perm } = clusterLayout(g.clusters, cols0, `scheme.granularity.clusters (${g.kind})`);
      return { rows: lead, cols: cols0, offsets, rowPeriod: g.kind === 'perCluster' ? 1 : Math.max(1, lead), perm };
    }
  }
}

/** Number of parameter slots of a layout. */
export function paramSlots(l: QuantLayout): number {
  return l.rowPeriod * (l.offsets.length - 1);
}
