// Byte-level BPE core: GPT-2's bytes<->unicode table, pre-tokenisation regex and merge loop (openai/gpt-2 encoder.py, HF tokenizers Word::merge_all).

/**
 * GPT-2 pre-tokenisation pattern (openai/gpt-2 `encoder.py`), with JS `\p{..}` classes and the `u`
 * flag. It is global, so clone it (`new RegExp(GPT2_PATTERN)`) before `exec`, or use `preTokenize`.
 */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Splits text into GPT-2 pre-tokens ("Hello world!" → ["Hello", " world", "!"]); they concatenate back to `text`. */
export function preTokenize(text: string): string[] {
  return text.match(new RegExp(GPT2_PATTERN)) ?? [];
}

/**
 * GPT-2's reversible map from the 256 byte values to printable code points: printable Latin-1
 * bytes map to themselves, the other 68 bytes to U+0100.. in byte order (space → 'Ġ', '\n' → 'Ċ').
 */
export function bytesToUnicode(): string[] {
  const map: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map[b] = String.fromCharCode(printable ? b : 256 + n++);
  }
  return map;
}

/** Inverse of `bytesToUnicode`: code point → byte, -1 for code points outside the table (shape (512,)). */
export function unicodeToBytes(): Int16Array {
  const inv = new Int16Array(512).fill(-1);
  bytesToUnicode().forEach((ch, b) => (inv[ch.charCodeAt(0)] = b));
  return inv;
}

/**
 * UTF-8 encodes `s` into `out` (grown if needed) and returns [bytes, length]. Lone surrogates
 * become U+FFFD, as TextEncoder does.
 */
export function utf8Encode(s: string, out: Uint8Array): [Uint8Array, number] {
  if (out.length < s.length * 3) out = new Uint8Array(s.length * 3);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) { out[n++] = c; continue; }
    if (c < 0x800) { out[n++] = 0xc0 | (c >> 6); out[n++] = 0x80 | (c & 63); continue; }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        out[n++] = 0xf0 | (c >> 18); out[n++] = 0x80 | ((c >> 12) & 63);
        out[n++] = 0x80 | ((c >> 6) & 63); out[n++] = 0x80 | (c & 63);
        continue;
      }
      c = 0xfffd;
    }
    out[n++] = 0xe0 | (c >> 12); out[n++] = 0x80 | ((c >> 6) & 63); out[n++] = 0x80 | (c & 63);
  }
  return [out, n];
}

/**
 * Merge table over token ids. `rank(a, b)` is the merge's line number (lower merges first) and
 * `merged(rank)` the id of the token `a + b`. Pair keys are `a * nVocab + b` (exact below 2^53).
 */
export class MergeTable {
  private readonly ranks = new Map<number, number>();
  private readonly out: number[] = [];
  constructor(private readonly nVocab: number) {}

  /** Adds a merge; returns false if the pair already had a (lower) rank, which then stays. */
  add(a: number, b: number, merged: number): boolean {
    const key = a * this.nVocab + b;
    if (this.ranks.has(key)) return false;
    this.ranks.set(key, this.out.length);
    this.out.push(merged);
    return true;
  }
  get size(): number { return this.out.length; }
  rank(a: number, b: number): number { return this.ranks.get(a * this.nVocab + b) ?? -1; }
  merged(rank: number): number { return this.out[rank]!; }
}

/** Binary min-heap of numeric keys, reused across words. */
class MinHeap {
  private a: number[] = [];
  get size(): number { return this.a.length; }
  clear(): void { this.a.length = 0; }
  push(x: number): void {
    const a = this.a;
    let i = a.length;
    a.push(x);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= x) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = x;
  }
  pop(): number {
    const a = this.a, top = a[0]!, last = a.pop()!;
    if (a.length === 0) return top;
    let i = 0;
    const n = a.length;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && a[c + 1]! < a[c]!) c++;
      if (a[c]! >= last) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

const POS = 2 ** 32; // heap key = rank * POS + left position; ranks below 2^21 keep keys exact

/**
 * Applies BPE merges to one pre-token given as initial symbol ids (one per byte). Lowest rank
 * first, ties left to right, exactly like GPT-2's "merge every occurrence of the best bigram"
 * loop. Symbols form a linked list over `prev`/`next`; stale heap entries are skipped on pop.
 */
export class BpeMerger {
  private heap = new MinHeap();
  private sym = new Int32Array(64); // (n,) current symbol id at each live position
  private prev = new Int32Array(64); // (n,) previous live position or -1
  private next = new Int32Array(64); // (n,) next live position or -1
  private alive = new Uint8Array(64); // (n,) 1 while the position starts a symbol

  constructor(private readonly table: MergeTable) {}

  merge(ids: ArrayLike<number>, n: number): number[] {
    if (n <= 1) return n === 1 ? [ids[0]!] : [];
    if (this.sym.length < n) {
      const m = Math.max(n, this.sym.length * 2);
      this.sym = new Int32Array(m); this.prev = new Int32Array(m);
      this.next = new Int32Array(m); this.alive = new Uint8Array(m);
    }
    const { sym, prev, next, alive, heap, table } = this;
    heap.clear();
    for (let i = 0; i < n; i++) {
      sym[i] = ids[i]!; prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; alive[i] = 1;
    }
    for (let i = 0; i + 1 < n; i++) {
      const r = table.rank(sym[i]!, sym[i + 1]!);
      if (r >= 0) heap.push(r * POS + i);
    }
    while (heap.size > 0) {
      const key = heap.pop();
      const r = Math.floor(key / POS), i = key - r * POS;
      const j = next[i]!;
      if (!alive[i] || j < 0 || table.rank(sym[i]!, sym[j]!) !== r) continue; // stale entry
      sym[i] = table.merged(r);
      alive[j] = 0;
      const k = next[j]!;
      next[i] = k;
      if (k >= 0) prev[k] = i;
      const p = prev[i]!;
      if (p >= 0) { const rp = table.rank(sym[p]!, sym[i]!); if (rp >= 0) heap.push(rp * POS + p); }
      if (k >= 0) { const rk = table.rank(sym[i]!, sym[k]!); if (rk >= 0) heap.push(rk * POS + i); }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
    return out;
  }
}
