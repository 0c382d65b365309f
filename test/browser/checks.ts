// Names of the checks test/browser/page.ts runs in headless Chromium, shared with the runner
// (test/browser/run.ts) so a check that silently does not run is a failure, not a shorter table.

/** coi: served with COOP/COEP (crossOriginIsolated, Web Worker pool); plain: without (1-thread fallback). */
export type Variant = 'coi' | 'plain';
export const VARIANTS: readonly Variant[] = ['coi', 'plain'];

export const CHECK = {
  environment: 'environment',
  auto: "init({backend: 'auto'}) picks relaxed; self-test passes",
  simd: "init({backend: 'simd'})",
  f32: (b: string) => `${b}: f32 GEMV/GEMM (linear, matmul) vs js`,
  w4: (b: string) => `${b}: qlinear W4 g32 vs js`,
  int: (b: string) => `${b}: qlinearInt W4A8/W4A4/W8A8 vs js (bit-exact)`,
  attn: (b: string) => `${b}: attentionPacked (u4, u3 caches) = dequantizeUnpack + attention, attentionBf16 = widen + attention (bit-exact)`,
  pool: 'threads: 2 starts a Web Worker pool on shared memory',
  faults: 'pool: worker throw / stall become LowbitError, then 1 thread',
  grow: 'threads: 2 across memory growth, bit-identical to 1 thread',
  threads: (b: string) => `${b}: init({threads: 2}) runs 2 threads, bit-identical to 1 thread`,
  fallback: 'init({threads: 2}) falls back to 1 thread with a note (not isolated)',
  worker: 'module Web Worker: init({threads: 2}), workloads bit-identical to the window',
  opt: 'OPT tiny fixture over http: logits and greedy tokens',
  rptq: 'RPTQ W4A4KV: quantized in the page = the file Node made; that file, fetched, runs as in Node',
} as const;

/** Every check the page must report on `variant`, in order. */
export function expectedChecks(variant: Variant): string[] {
  const kernels = (['relaxed', 'simd'] as const).flatMap((b) => [CHECK.f32(b), CHECK.w4(b), CHECK.int(b), CHECK.attn(b)]);
  const threads = variant === 'coi' ? [CHECK.pool, CHECK.faults, CHECK.grow, CHECK.threads('relaxed'), CHECK.threads('simd')] : [CHECK.fallback];
  return [CHECK.environment, CHECK.auto, CHECK.simd, ...kernels, ...threads, CHECK.worker, CHECK.opt, CHECK.rptq];
}
