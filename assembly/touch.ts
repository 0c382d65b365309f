// Page-ahead touches for kernels that stream an array once per call from DRAM: the GEMVs of decode
// (assembly/qmatmul.ts) and the KV-cache walk of attention_f32 (assembly/f32.ts).
//
// WASM has no prefetch instruction, and in decode the weights come from DRAM: an OPT-125m W4A16 step
// walks ~75 MB of codes and scales, more than one core of the CI machine keeps in L3. The hardware
// stream prefetcher does not cross 4 KiB pages, so at every page the first lines miss one after
// another. Once per page, TOUCH_LINES plain loads of the lines that start the page TOUCH_DIST bytes
// ahead start that page's misses, and its prefetch stream, early. A caller keeps one cursor per
// stream (touchStart), advances it with touchStream as it walks, and never touches past `end`. The
// loaded bytes are OR-ed into SINK, a static 16-byte slot that touch_sink exports, so no optimizer can
// drop the loads; they never change a result. (A v128 global instead of the memory slot cost more than
// the touches saved.) Figures: assembly/qmatmul.ts, "Page-ahead touches". The f32 GEMV (FP32
// decode) does not use them: it already runs at DRAM bandwidth, and touching its B stream measured
// 41.9 → 43.4 ms per OPT-125m token (within noise, not a gain).

export const PAGE: usize = 4096;
const TOUCH_DIST: usize = 4096;
const TOUCH_LINES: usize = 4;
const SINK: usize = memory.data(16, 16);

/** The OR of touched bytes (meaningless; exported so that the touches are observable). */
export function touch_sink(): i32 {
  return load<i32>(SINK);
}

/** The first page a stream starting at p touches. */
// @ts-ignore: decorator
@inline export function touchStart(p: usize): usize {
  return (p + TOUCH_DIST + PAGE - 1) & ~(PAGE - 1);
}

/**
 * The caller has reached `pos` of a stream that ends at `end`: touches the page starts in
 * [next, pos + TOUCH_DIST) that lie whole inside the stream; returns the next page to touch.
 */
// @ts-ignore: decorator
@inline export function touchStream(next: usize, pos: usize, end: usize): usize {
  if (next < pos + TOUCH_DIST && next + TOUCH_LINES * 64 <= end) {
    let s = v128.load(SINK);
    do {
      for (let l: usize = 0; l < TOUCH_LINES; l++) s = v128.or(s, v128.load(next + l * 64));
      next += PAGE;
    } while (next < pos + TOUCH_DIST && next + TOUCH_LINES * 64 <= end);
    v128.store(SINK, s);
  }
  return next;
}
