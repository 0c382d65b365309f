// The worker thread of the pool (src/wasm/pool.ts) as a self-contained JS source string, so vitest
// (TS sources), Node 20 (no .ts workers) and bundlers (no paths to resolve) all start it the same
// way: `new Worker(src, {eval: true})` on Node, a Blob URL in browsers. It imports nothing.
//
// Control block: one SharedArrayBuffer (not WASM memory, so the heap never sees it), read as Int32
// words, Float64 arguments and a UTF-16 error message:
//
//   word  NEXT     (gen << CHUNK_BITS) | next unclaimed chunk; workers wait on it for a new gen
//   word  DONE     chunks finished in the current job (the last finisher notifies it)
//   word  TOTAL    chunks in the current job
//   word  ERR      0, or 1 + thread id of the first chunk that threw (message in the ERR area)
//   word  STOP     1: workers leave their loop
//   word  SLEEPERS workers inside Atomics.wait (the main thread notifies only when > 0)
//   word  SPIN_US  how long an idle worker spins before it sleeps, microseconds
//   word  FAULT    test hook: tid whose next chunk throws, -tid: that hangs (0 = none)
//   word  NOPS     ops in the current job (each op: OP_INTS words + ARGS_PER_OP f64 arguments)
//
// A job is a list of independent ops, each split into chunks of a range (rows or columns). Any
// thread claims chunk i of generation g by compareExchange(NEXT, g|i, g|i+1), so a thread that read
// the op table of an older job can never claim a chunk of a newer one; a worker that is slow to wake
// simply claims nothing, and the main thread computes every chunk left.

/** Low bits of NEXT holding the chunk index; the high bits hold the job generation. */
export const CHUNK_BITS = 11;
export const MAX_CHUNKS = (1 << CHUNK_BITS) - 1;
export const GEN_MASK = (1 << (31 - CHUNK_BITS)) - 1;

export const W_NEXT = 0;
export const W_DONE = 1;
export const W_TOTAL = 2;
export const W_ERR = 3;
export const W_STOP = 4;
export const W_SLEEPERS = 5;
export const W_SPIN_US = 6;
export const W_FAULT = 7;
export const W_NOPS = 8;
export const W_ERRLEN = 9;

/** Op table: MAX_OPS records of OP_INTS words from word OPS_WORD. */
export const MAX_OPS = 8;
export const MAX_ARGS = 16;
export const MAX_ADVANCE = 6;
export const OPS_WORD = 64;
/**
 * Per op: fn, nargs, countArg, total, chunk, firstChunk, nChunks, tidArg, tidBytes, then
 * (arg, bytes) × MAX_ADVANCE (arg -1 = unused).
 */
export const OP_INTS = 9 + 2 * MAX_ADVANCE;
/** Float64 arguments: MAX_ARGS per op from this f64 index. */
export const ARGS_F64 = 512;
/** Error message: UTF-16 code units from this u16 index. */
export const ERR_U16 = 8192;
export const ERR_CHARS = 2048;
export const CONTROL_BYTES = 2 * ERR_U16 + 2 * ERR_CHARS;

export const WORKER_SOURCE = `'use strict';
(() => {
  const CHUNK_BITS = ${CHUNK_BITS}, IDX_MASK = ${MAX_CHUNKS};
  const NEXT = ${W_NEXT}, DONE = ${W_DONE}, TOTAL = ${W_TOTAL}, ERR = ${W_ERR}, STOP = ${W_STOP};
  const SLEEPERS = ${W_SLEEPERS}, SPIN_US = ${W_SPIN_US}, FAULT = ${W_FAULT}, NOPS = ${W_NOPS}, ERRLEN = ${W_ERRLEN};
  const OPS_WORD = ${OPS_WORD}, OP_INTS = ${OP_INTS}, ARGS_F64 = ${ARGS_F64}, MAX_ARGS = ${MAX_ARGS};
  const MAX_ADVANCE = ${MAX_ADVANCE}, ERR_U16 = ${ERR_U16}, ERR_CHARS = ${ERR_CHARS};
  const isNode = typeof process === 'object' && !!(process.versions && process.versions.node) && typeof require === 'function';
  const port = isNode ? require('node:worker_threads').parentPort : self;
  const now = () => performance.now();

  function start(msg) {
    const { module, memory, control, names, tid } = msg;
    WebAssembly.instantiate(module, { env: { memory } }).then((inst) => {
      const fns = names.map((n) => inst.exports[n]);
      const ctl = new Int32Array(control);
      const gen = Atomics.load(ctl, NEXT) >>> CHUNK_BITS;
      port.postMessage({ type: 'ready', tid });
      loop(ctl, new Float64Array(control), new Uint16Array(control), fns, tid, gen);
    }, (e) => port.postMessage({ type: 'failed', tid, message: String((e && e.message) || e) }));
  }

  function loop(ctl, f64, u16, fns, tid, gen) {
    const argv = [];
    for (;;) {
      // spin on NEXT for SPIN_US, then sleep in Atomics.wait until the main thread posts a new gen
      let v = Atomics.load(ctl, NEXT);
      if ((v >>> CHUNK_BITS) === gen) {
        const until = now() + Atomics.load(ctl, SPIN_US) / 1000;
        let n = 0;
        while ((v >>> CHUNK_BITS) === gen && !Atomics.load(ctl, STOP)) {
          if ((++n & 255) === 0 && now() > until) {
            Atomics.add(ctl, SLEEPERS, 1);
            Atomics.wait(ctl, NEXT, v);
            Atomics.sub(ctl, SLEEPERS, 1);
          }
          v = Atomics.load(ctl, NEXT);
        }
      }
      if (Atomics.load(ctl, STOP)) return;
      gen = v >>> CHUNK_BITS;
      // The op table is read after NEXT showed this gen; it is only trusted if a claim below succeeds.
      const total = ctl[TOTAL], nops = ctl[NOPS];
      for (;;) {
        const idx = v & IDX_MASK;
        if ((v >>> CHUNK_BITS) !== gen || idx >= total) break;
        const prev = Atomics.compareExchange(ctl, NEXT, v, v + 1);
        if (prev !== v) { v = prev; continue; }
        if (Atomics.load(ctl, FAULT) === -tid) {
          // test hook: die holding a claimed chunk (the main thread must time out, not hang)
          while (!Atomics.load(ctl, STOP));
          return;
        }
        try {
          if (Atomics.load(ctl, FAULT) === tid) {
            Atomics.store(ctl, FAULT, 0);
            throw new Error('injected fault (test hook)');
          }
          runChunk(ctl, f64, fns, nops, idx, tid, argv);
        } catch (e) {
          if (Atomics.compareExchange(ctl, ERR, 0, tid + 1) === 0) {
            const s = String((e && e.stack) || e).slice(0, ERR_CHARS);
            for (let i = 0; i < s.length; i++) u16[ERR_U16 + i] = s.charCodeAt(i);
            ctl[ERRLEN] = s.length;
          }
        }
        if (Atomics.add(ctl, DONE, 1) + 1 === total) Atomics.notify(ctl, DONE);
        v = Atomics.load(ctl, NEXT);
      }
    }
  }

  function runChunk(ctl, f64, fns, nops, idx, tid, argv) {
    for (let o = 0; o < nops; o++) {
      const w = OPS_WORD + o * OP_INTS;
      const first = ctl[w + 5], nChunks = ctl[w + 6];
      if (idx < first || idx >= first + nChunks) continue;
      const nargs = ctl[w + 1], countArg = ctl[w + 2], total = ctl[w + 3], chunk = ctl[w + 4];
      const tidArg = ctl[w + 7], tidBytes = ctl[w + 8];
      const start = (idx - first) * chunk, len = Math.min(chunk, total - start);
      argv.length = nargs;
      for (let i = 0; i < nargs; i++) argv[i] = f64[ARGS_F64 + o * MAX_ARGS + i];
      argv[countArg] = len;
      for (let j = 0; j < MAX_ADVANCE; j++) {
        const a = ctl[w + 9 + 2 * j], bytes = ctl[w + 10 + 2 * j];
        if (a >= 0 && argv[a] !== 0) argv[a] += start * bytes;
      }
      if (tidArg >= 0) argv[tidArg] += tid * tidBytes;
      fns[ctl[w]].apply(null, argv);
      return;
    }
    throw new Error('chunk ' + idx + ' belongs to no op');
  }

  if (isNode) port.once('message', start);
  else self.onmessage = (e) => { self.onmessage = null; start(e.data); };
})();
`;
