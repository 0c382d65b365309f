// A module Web Worker started by test/browser/page.ts: lowbit used off the main thread, as an app
// would run a decoder. Given InitOptions, it runs init() and every workload of ./workloads.ts and
// posts back {info, crossOriginIsolated, results} or {error}. Inside a worker the pool's main
// thread may block in Atomics.wait (a window only spins), so this also covers that path.

import { init, type InitOptions } from '../../src/index.js';
import { allWorkloads, atLeastTwoCpus } from './workloads.js';

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
  crossOriginIsolated?: boolean;
  navigator: object;
};

atLeastTwoCpus(scope.navigator);

scope.onmessage = (e) => {
  init(e.data as InitOptions)
    .then((info) => scope.postMessage({ info, crossOriginIsolated: scope.crossOriginIsolated === true, results: [...allWorkloads()] }))
    .catch((err: unknown) => scope.postMessage({ error: String((err as Error)?.stack ?? err) }));
};
