// `npm run test:browser`: runs test/browser/page.ts in headless Chromium against the built dist/,
// once on a cross-origin isolated origin path (COOP: same-origin + COEP: require-corp, so the
// Web Worker pool can share WASM memory) and once without those headers (one-thread fallback).
// Zero dependencies: a node:http server on 127.0.0.1, Chromium spawned headless, and the page
// POSTs its progress, its errors (window error, unhandledrejection, module load failure) and its
// results back. Exits non-zero naming the failed check, page error or timeout.
//
// Environment: CHROMIUM (default /usr/bin/chromium), LOWBIT_BROWSER_TIMEOUT_MS (per variant,
// default 120000), LOWBIT_FIXTURES (default ../shared/data/fixtures next to the repository).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expectedChecks, VARIANTS, type Variant } from './checks.js';
import type { PageReport } from './page.js';
import { RPTQ_CASE, rptqCalibration } from './workloads.js';
import { createBackend, generateIds, loadOPT, QRunState, qforward, rptq, saveQuantizedOPT } from '../../src/index.js';

// dist/test/browser/run.js → repository root
const ROOT = resolve(fileURLToPath(new URL('../../../', import.meta.url)));
const DIST = join(ROOT, 'dist');
const FIXTURES = resolve(process.env['LOWBIT_FIXTURES'] ?? join(ROOT, '..', 'shared', 'data', 'fixtures'));
const OPT_FIXTURE = join(FIXTURES, 'opt-tiny-torch');
const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';
const TIMEOUT_MS = Number(process.env['LOWBIT_BROWSER_TIMEOUT_MS'] ?? 120_000);
const PAGE_PATH = 'test/browser/index.html';

const MIME: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.html': 'text/html; charset=utf-8',
  '.json': 'application/json', '.map': 'application/json', '.txt': 'text/plain; charset=utf-8',
};

/** Headers that make a document cross-origin isolated (and subresources acceptable under COEP). */
const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** The page: error reporters first (classic script), then the checks as an ES module. */
function pageHtml(variant: Variant): string {
  const report = `(m) => fetch('/report/error?variant=${variant}', { method: 'POST', body: JSON.stringify({ error: m }) })`;
  return `<!doctype html>
<meta charset="utf-8">
<title>lowbit browser test (${variant})</title>
<script>
  const report = ${report};
  addEventListener('error', (e) => report('window error: ' + e.message + ' at ' + e.filename + ':' + e.lineno + ':' + e.colno));
  addEventListener('unhandledrejection', (e) => report('unhandled rejection: ' + ((e.reason && e.reason.stack) || e.reason)));
</script>
<script type="module" src="page.js" onerror="report('page.js or one of its imports failed to load (see the 404s below)')"></script>
`;
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

interface VariantState {
  progress: string[];
  errors: string[];
  report: PageReport | null;
  /** Paths under dist/ the page asked for and the server does not have. */
  notFound: string[];
  /** Called when the report or the first error arrives. */
  wake: () => void;
}

const state = new Map<Variant, VariantState>();

/**
 * Files the runner makes for the page, served under /<variant>/generated/: the tiny fixture quantized with RPTQ_CASE in
 * Node on the simd backend (rptq.safetensors), the probe's logits (rptq-logits.f32) and the greedy tokens (rptq.json).
 */
const GENERATED = new Map<string, Uint8Array>();

async function makeRptqFiles(): Promise<void> {
  const be = await createBackend('simd');
  try {
    const model = loadOPT(JSON.parse(readFileSync(join(OPT_FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>,
      readFileSync(join(OPT_FIXTURE, 'model.safetensors')), { backend: be });
    const qm = rptq.quantizeOPT(model, rptq.rptqRecipe(RPTQ_CASE.preset, RPTQ_CASE.overrides), { calibration: rptqCalibration(1024, model.config.vocabSize) });
    const s = new QRunState(qm, { maxContext: RPTQ_CASE.probe.length });
    const logits = qforward(qm, s, RPTQ_CASE.probe, 0, { logits: 'all' }).slice();
    s.dispose();
    const greedy = generateIds(qm, [RPTQ_CASE.prompt], { maxNewTokens: RPTQ_CASE.steps, stopAtEos: false })[0]!;
    GENERATED.set('rptq.safetensors', saveQuantizedOPT(qm));
    GENERATED.set('rptq-logits.f32', new Uint8Array(logits.buffer));
    GENERATED.set('rptq.json', new TextEncoder().encode(JSON.stringify({ greedy })));
    qm.dispose(); model.dispose();
  } finally {
    await be.dispose();
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((res, rej) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => res(Buffer.concat(parts).toString('utf8')));
    req.on('error', rej);
  });
}

/** A file under `base` for the URL path `rel`, or null (missing, a directory, or outside `base`). */
function fileUnder(base: string, rel: string): string | null {
  const p = normalize(join(base, decodeURIComponent(rel)));
  if (p !== base && !p.startsWith(base + sep)) return null;
  return existsSync(p) && statSync(p).isFile() ? p : null;
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const parts = url.pathname.split('/').filter(Boolean);
  if (req.method === 'POST' && parts[0] === 'report') {
    const st = state.get(url.searchParams.get('variant') as Variant);
    const body = await readBody(req);
    res.writeHead(204).end();
    if (!st) return;
    const msg = JSON.parse(body) as { name?: string; error?: string };
    if (parts[1] === 'progress' && msg.name) st.progress.push(msg.name);
    else if (parts[1] === 'error') st.errors.push(msg.error ?? body);
    else if (parts[1] === 'result') st.report = JSON.parse(body) as PageReport;
    if (parts[1] !== 'progress') st.wake();
    return;
  }
  const variant = parts[0] as Variant;
  if (req.method !== 'GET' || !VARIANTS.includes(variant)) {
    res.writeHead(404).end();
    return;
  }
  const headers: Record<string, string> = { 'Cache-Control': 'no-store', ...(variant === 'coi' ? ISOLATION : {}) };
  const rel = parts.slice(1).join('/');
  if (rel === PAGE_PATH) {
    res.writeHead(200, { ...headers, 'Content-Type': MIME['.html']! }).end(pageHtml(variant));
    return;
  }
  const made = rel.startsWith('generated/') ? GENERATED.get(rel.slice('generated/'.length)) : undefined;
  if (made) {
    res.writeHead(200, { ...headers, 'Content-Type': 'application/octet-stream', 'Content-Length': String(made.byteLength) }).end(made);
    return;
  }
  const file = rel.startsWith('fixtures/') ? fileUnder(FIXTURES, rel.slice('fixtures/'.length)) : fileUnder(DIST, rel);
  if (!file) {
    // the OPT loader probes for optional files (index.json, tokenizer): those 404s are expected
    if (!rel.startsWith('fixtures/')) state.get(variant)?.notFound.push(rel);
    res.writeHead(404, headers).end();
    return;
  }
  const body = readFileSync(file);
  // Content-Length as static servers send it: fetchBytes (src/io/fetch.ts) then preallocates the body
  res.writeHead(200, { ...headers, 'Content-Type': MIME[extname(file)] ?? 'application/octet-stream', 'Content-Length': String(body.byteLength) }).end(body);
}

// ---------------------------------------------------------------------------------------------
// Chromium
// ---------------------------------------------------------------------------------------------

/** Starts headless Chromium on `url` in its own process group with a throwaway profile. */
function launch(url: string): { child: ChildProcess; profile: string; log: string[] } {
  const profile = mkdtempSync(join(tmpdir(), 'lowbit-chromium-'));
  const args = [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', `--user-data-dir=${profile}`,
    '--no-first-run', '--no-default-browser-check', '--disable-extensions', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--mute-audio', '--enable-logging=stderr', '--v=0', url,
  ];
  const child = spawn(CHROMIUM, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  const keep = (b: Buffer) => {
    log.push(...b.toString('utf8').split('\n').filter(Boolean));
    if (log.length > 400) log.splice(0, log.length - 400);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, profile, log };
}

/** Stops the Chromium process group: SIGTERM, then SIGKILL after 5 s. */
async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, s);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
  signal('SIGKILL'); // renderers left in the group, if any
}

interface Outcome {
  variant: Variant;
  report: PageReport | null;
  failures: string[];
  seconds: number;
}

async function runVariant(variant: Variant, port: number): Promise<Outcome> {
  const t0 = performance.now();
  let wake = () => {};
  const woken = new Promise<void>((r) => { wake = r; });
  const st: VariantState = { progress: [], errors: [], report: null, notFound: [], wake };
  state.set(variant, st);
  const q = new URLSearchParams({ variant });
  if (existsSync(join(OPT_FIXTURE, 'config.json'))) q.set('fixture', `/${variant}/fixtures/opt-tiny-torch/`);
  if (GENERATED.size) q.set('generated', `/${variant}/generated/`);
  const url = `http://127.0.0.1:${port}/${variant}/${PAGE_PATH}?${q}`;
  const { child, profile, log } = launch(url);
  let exitInfo = '';
  const exited = new Promise<void>((r) => child.once('exit', (code, sig) => { exitInfo = `chromium exited (code ${code}, signal ${sig})`; r(); }));
  const spawnError = new Promise<string>((r) => child.once('error', (e) => r(`cannot start ${CHROMIUM}: ${e.message}`)));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<void>((r) => { timer = setTimeout(r, TIMEOUT_MS); });
  const failures: string[] = [];
  const how = await Promise.race([
    woken.then(async () => {
      // after a page error, give the page a moment to report more (or its result)
      if (!st.report) await Promise.race([new Promise((r) => setTimeout(r, 2000)), new Promise<void>((r) => { st.wake = r; })]);
      return 'done';
    }),
    exited.then(() => 'exited'),
    spawnError,
    timedOut.then(() => 'timeout'),
  ]);
  clearTimeout(timer);
  await kill(child);
  rmSync(profile, { recursive: true, force: true });

  if (how === 'timeout') {
    failures.push(`timeout after ${TIMEOUT_MS / 1000} s` + (st.progress.length ? ` in check '${st.progress.at(-1)}'` : ' before any check started'));
  } else if (how === 'exited') {
    failures.push(`${exitInfo} before reporting`);
  } else if (how !== 'done') {
    failures.push(how);
  }
  for (const e of st.errors) failures.push(`page error: ${e}`);
  const rep = st.report;
  if (rep) {
    const names = rep.checks.map((c) => c.name);
    for (const want of expectedChecks(variant)) if (!names.includes(want)) failures.push(`check '${want}' did not run`);
    for (const c of rep.checks) if (c.status === 'fail') failures.push(`check '${c.name}' failed: ${c.detail}`);
  } else if (!failures.length) {
    failures.push('the page sent no result');
  }
  if (failures.length) {
    if (st.notFound.length) failures.push(`404s: ${st.notFound.join(', ')}`);
    const useful = log.filter((l) => !/dbus|ScreenSaver|zygote/i.test(l)).slice(-40);
    console.error(`--- chromium log (${variant}, last lines without D-Bus/zygote noise) ---\n${useful.join('\n')}\n---`);
  }
  return { variant, report: rep, failures, seconds: (performance.now() - t0) / 1000 };
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!.length)));
  const line = (r: string[]) => `| ${r.map((c, j) => c.padEnd(w[j]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

async function main(): Promise<number> {
  if (!existsSync(join(DIST, 'src', 'index.js')) || !existsSync(join(DIST, 'test', 'browser', 'page.js'))) {
    console.error(`browser test: ${DIST} has no build; run \`npm run build\` first`);
    return 1;
  }
  if (!existsSync(CHROMIUM)) {
    console.error(`browser test: no Chromium at ${CHROMIUM} (set CHROMIUM, or apt-get install chromium)`);
    return 1;
  }
  if (!existsSync(join(OPT_FIXTURE, 'config.json'))) console.warn(`browser test: no fixture at ${OPT_FIXTURE}; the OPT and RPTQ checks are skipped`);
  else await makeRptqFiles();
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      console.error(`server: ${req.method} ${req.url}: ${String(e)}`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const t0 = performance.now();
  const outcomes: Outcome[] = [];
  try {
    for (const v of VARIANTS) outcomes.push(await runVariant(v, port));
  } finally {
    server.close();
    server.closeAllConnections();
  }

  const rows = [['variant', 'check', 'result', 'ms', 'detail']];
  for (const o of outcomes) {
    for (const c of o.report?.checks ?? []) {
      const detail = c.detail.split('\n')[0]!;
      rows.push([o.variant, c.name, c.status.toUpperCase(), String(c.ms), detail.length > 120 ? `${detail.slice(0, 117)}...` : detail]);
    }
  }
  console.log(`\nlowbit browser test, ${CHROMIUM}`);
  for (const o of outcomes) {
    const e = o.report?.env;
    console.log(`  ${o.variant}: ${o.seconds.toFixed(1)} s` + (e ? `, crossOriginIsolated=${e.crossOriginIsolated}, hardwareConcurrency=${e.hardwareConcurrency}, ${e.userAgent}` : ''));
  }
  if (rows.length > 1) console.log(`\n${table(rows)}\n`);
  const failures = outcomes.flatMap((o) => o.failures.map((f) => `[${o.variant}] ${f}`));
  const total = rows.length - 1, passed = rows.filter((r) => r[2] === 'PASS').length, skipped = rows.filter((r) => r[2] === 'SKIP').length;
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  if (failures.length) {
    console.error(`browser test FAILED (${secs} s):\n${failures.map((f) => `  - ${f}`).join('\n')}`);
    return 1;
  }
  console.log(`browser test passed: ${passed}/${total} checks${skipped ? `, ${skipped} skipped` : ''} in ${secs} s`);
  return 0;
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(`browser test: ${String((e as Error)?.stack ?? e)}`);
  process.exit(1);
});
