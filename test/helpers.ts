// Shared test helpers: LowbitError assertions and paths into ../shared/data.

import { expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { LowbitError } from '../src/errors.js';
import { mulberry32 } from '../src/models/opt/sample.js';

/** ../shared/data beside the repo. */
export const SHARED_DATA = new URL('../../shared/data/', import.meta.url);
/** The PyTorch-made tiny OPT fixture. */
export const FIXTURE = new URL('fixtures/opt-tiny-torch/', SHARED_DATA);

export const fixtureBytes = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, FIXTURE)));

/** Runs `fn` and returns the LowbitError it throws (fails the test if it throws anything else or nothing). */
export function lowbitError(fn: () => unknown): LowbitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LowbitError);
    return e as LowbitError;
  }
  throw new Error('expected a LowbitError, nothing was thrown');
}

/** The same for a promise. */
export async function lowbitErrorAsync(p: Promise<unknown>): Promise<LowbitError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(LowbitError);
    return e as LowbitError;
  }
  throw new Error('expected a LowbitError, nothing was rejected');
}

/** Expects `f` to throw a LowbitError with `code` whose message contains every one of `parts`. */
export function expectLowbit(f: () => unknown, code: string, ...parts: Array<string | RegExp>): void {
  const err = lowbitError(f);
  expect(err.code).toBe(code);
  for (const p of parts) {
    if (typeof p === 'string') expect(err.message).toContain(p);
    else expect(err.message).toMatch(p);
  }
}

/** n token ids in 4..vocab−1 (mulberry32 stream of `seed`). */
export function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const r = mulberry32(seed);
  return Int32Array.from({ length: n }, () => 4 + Math.floor(r() * (vocab - 4)));
}

/** max |a − b| / max |a|: the error of `b` relative to the reference `a`'s scale. */
export function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0, mx = 0;
  for (let i = 0; i < a.length; i++) { err = Math.max(err, Math.abs(a[i]! - b[i]!)); mx = Math.max(mx, Math.abs(a[i]!)); }
  return err / mx;
}
