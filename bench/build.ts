// Build benchmark: what vztpl adds on top of the tools it drives, measured in one run.
//   1. cold build (--no-cache) of a Debian 12 minbase recipe vs. mmdebstrap alone with the
//      options vztpl passes (the same mmdebstrapSource.bootstrap call), alternated A B A B;
//   2. warm rebuild of the unchanged recipe through the CLI, as a whole process;
//   3. packing the bootstrap tree: walkLayer + packLayer vs. GNU tar piped into zstd (and gzip).
// Usage: node bench/build.ts [--rounds N] [--only cold,warm,pack] [--no-results]
// The cache (.debs, step cache) stays in --bench-dir; everything else is removed at the end.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { mmdebstrapSource } from '../builder/sources/mmdebstrap.ts';
import type { DebianBootstrapSpec } from '../builder/recipe/schema.ts';
import { packLayer } from '../format/tar/pack.ts';
import { walkLayer } from '../format/tar/walk.ts';
import { loadAverage, machine, median, ratio, runChecked, running, secs, table, timeAsync, type ProcessRun, runBench } from './lib.ts';
import { REPO, report, say } from './support.ts';


const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    'warm-rounds': { type: 'string', default: '5' },
    'pack-rounds': { type: 'string', default: '5' },
    'gzip-rounds': { type: 'string', default: '3' },
    mirror: { type: 'string', default: 'http://deb.debian.org/debian' },
    'bench-dir': { type: 'string', default: '/var/tmp/vztpl-bench' },
    only: { type: 'string', default: 'cold,warm,pack' },
    'no-results': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write('Usage: node bench/build.ts [--rounds 2] [--warm-rounds 5] [--pack-rounds 5] [--gzip-rounds 3]\n' +
    '         [--mirror URL] [--bench-dir /var/tmp/vztpl-bench] [--only cold,warm,pack] [--no-results]\n');
  process.exit(0);
}
const ROUNDS = Number(opt.rounds);
const WARM_ROUNDS = Number(opt['warm-rounds']);
const PACK_ROUNDS = Number(opt['pack-rounds']);
const GZIP_ROUNDS = Number(opt['gzip-rounds']);
const only = new Set(opt.only.split(','));
const benchDir = resolve(opt['bench-dir']);
const cacheDir = join(benchDir, 'cache');
const runDir = join(benchDir, `run-${process.pid}`);
const env = { ...process.env, PATH: `/usr/local/bin:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };

const spec: DebianBootstrapSpec = {
  tool: 'mmdebstrap',
  suite: 'bookworm',
  mirror: opt.mirror,
  variant: 'minbase',
  components: ['main'],
  packages: [],
};
const RECIPE = `# vztpl benchmark: Debian 12 minbase, the bootstrap layer only.
name: debian-12-x86_64-bench
version: 1.0.0
description: benchmark recipe (bench/build.ts)
bootstrap:
  tool: mmdebstrap
  suite: ${spec.suite}
  mirror: ${spec.mirror}
  variant: ${spec.variant}
  components: [${spec.components.join(', ')}]
`;

const abort = new AbortController();
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write('\ninterrupted: stopping the running command and cleaning up\n');
  abort.abort(new Error('interrupted'));
  for (const child of running) child.kill('SIGINT');
});

// --- 1. cold build ----------------------------------------------------------------------------

interface Event {
  t: number;
  event: string;
  line?: string;
  index?: number;
  cached?: boolean;
  digest?: string;
  seconds?: number;
}

function events(run: ProcessRun): Event[] {
  const out: Event[] = [];
  for (const { t, line } of run.lines) {
    if (!line.startsWith('{')) continue;
    try {
      out.push({ ...(JSON.parse(line) as Omit<Event, 't'>), t });
    } catch {
      /* not an event */
    }
  }
  return out;
}

/** Phases of one CLI build, in ms, from the times its NDJSON events reached us. */
function phases(run: ProcessRun): Record<string, number> {
  const ev = events(run);
  const at = (pred: (e: Event) => boolean, fallback: number) => ev.find(pred)?.t ?? fallback;
  const started = at((e) => e.event === 'build-start', 0);
  const firstStep = at((e) => e.event === 'step-start', started);
  const logs = ev.filter((e) => e.event === 'step-log');
  const bootstrapEnd = [...logs].reverse().find((e) => /^I: success in/.test(e.line ?? ''))?.t ?? logs.at(-1)?.t ?? firstStep;
  const stepsDone = [...ev].reverse().find((e) => e.event === 'step-done')?.t ?? firstStep;
  return {
    startup: started,
    inrelease: firstStep - started,
    ...(logs.length ? { mmdebstrap: bootstrapEnd - firstStep, 'clean+walk+pack+store': stepsDone - bootstrapEnd } : { steps: stepsDone - firstStep }),
    'layout+exit': run.ms - stepsDone,
  };
}

function describePhases(p: Record<string, number>): string {
  return Object.entries(p)
    .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)}`)
    .join(', ');
}

async function cliBuild(recipe: string, out: string, noCache: boolean): Promise<ProcessRun> {
  await rm(out, { recursive: true, force: true });
  const args = ['cli/main.ts', 'build', recipe, '--cache-dir', cacheDir, '-o', out, '--json'];
  if (noCache) args.push('--no-cache');
  return runChecked('vztpl build', process.execPath, args, { cwd: REPO, env });
}

let baselineCount = 0;
async function mmdebstrapAlone(): Promise<number> {
  const root = join(runDir, `mmdebstrap-${++baselineCount}`);
  await mkdir(root);
  try {
    const { ms } = await timeAsync(() =>
      mmdebstrapSource.bootstrap(spec, {
        root,
        cacheDir: join(cacheDir, 'packages', 'deb'),
        epoch: Math.floor(Date.now() / 1000),
        arch: 'x86_64',
        log: () => undefined,
        signal: abort.signal,
      }),
    );
    return ms;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

interface ColdResult {
  vztpl: number[];
  mmdebstrap: number[];
  phases: Record<string, number>[];
  blobDigest?: string;
}

async function cold(recipe: string): Promise<ColdResult> {
  const out = join(runDir, 'out-cold');
  const result: ColdResult = { vztpl: [], mmdebstrap: [], phases: [] };
  say(`cold: ${ROUNDS} rounds of vztpl build --no-cache and mmdebstrap alone, alternated, after one untimed warm-up of each`);
  const warm = await cliBuild(recipe, out, true);
  say(`cold  warm-up  vztpl       ${secs(warm.ms)}  (${describePhases(phases(warm))})`);
  say(`cold  warm-up  mmdebstrap  ${secs(await mmdebstrapAlone())}`);
  for (let r = 1; r <= ROUNDS; r++) {
    const run = await cliBuild(recipe, out, true);
    const p = phases(run);
    result.vztpl.push(run.ms);
    result.phases.push(p);
    result.blobDigest = events(run).find((e) => e.event === 'step-done')?.digest;
    say(`cold  ${r}/${ROUNDS}      vztpl       ${secs(run.ms)}  (${describePhases(p)})`);
    const ms = await mmdebstrapAlone();
    result.mmdebstrap.push(ms);
    say(`cold  ${r}/${ROUNDS}      mmdebstrap  ${secs(ms)}`);
  }
  await rm(out, { recursive: true, force: true });
  return result;
}

// --- 2. warm rebuild --------------------------------------------------------------------------

interface WarmResult {
  ms: number[];
  phases: Record<string, number>[];
}

async function warm(recipe: string): Promise<WarmResult> {
  const out = join(runDir, 'out-warm');
  const result: WarmResult = { ms: [], phases: [] };
  say(`warm: ${WARM_ROUNDS} rebuilds of the unchanged recipe (vztpl build as a whole process, everything cached)`);
  for (let r = 1; r <= WARM_ROUNDS; r++) {
    const run = await cliBuild(recipe, out, false);
    const ev = events(run);
    if (ev.some((e) => e.event === 'step-done' && !e.cached)) throw new Error('warm rebuild ran a step: the cache did not hold the recipe');
    const p = phases(run);
    result.ms.push(run.ms);
    result.phases.push(p);
    say(`warm  ${r}/${WARM_ROUNDS}  vztpl build  ${secs(run.ms)}  (${describePhases(p)})`);
  }
  await rm(out, { recursive: true, force: true });
  return result;
}

// --- 3. packing -------------------------------------------------------------------------------

interface StepMeta {
  key: string;
  treeKind: 'rootfs' | 'upper';
  diffId?: string;
  tarSize?: number;
  blobs: { zstd?: { digest: string; size: number }; gzip?: { digest: string; size: number } };
  history: { created: string };
}

/** The cached bootstrap layer: the one the cold build made, else the newest rootfs entry. */
function bootstrapEntry(blobDigest: string | undefined): { meta: StepMeta; tree: string } {
  const steps = join(cacheDir, 'steps');
  const found: { meta: StepMeta; tree: string; mtime: number }[] = [];
  for (const key of existsSync(steps) ? readdirSync(steps) : []) {
    const file = join(steps, key, 'step.json');
    if (!existsSync(file)) continue;
    const meta = JSON.parse(readFileSync(file, 'utf8')) as StepMeta;
    if (meta.treeKind !== 'rootfs' || !meta.diffId) continue;
    // step.json names its tree dir once a --no-cache build replaced the entry (builder/step-cache.ts).
    found.push({ meta, tree: join(steps, key, (meta as { treeDir?: string }).treeDir ?? 'tree'), mtime: statSync(file).mtimeMs });
  }
  const chosen = found.find((f) => blobDigest && f.meta.blobs.zstd?.digest === blobDigest) ?? found.sort((a, b) => b.mtime - a.mtime)[0];
  if (!chosen) throw new Error(`no cached bootstrap layer in ${steps}: run the cold section first`);
  return chosen;
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

interface PackSide {
  ms: number[];
  tarBytes: number;
  outBytes: number;
  walkMs?: number[];
}

interface PackResult {
  tree: string;
  entries: number;
  zstd: { vztpl: PackSide; gnu: PackSide };
  gzip: { vztpl: PackSide; gnu: PackSide };
  digestsMatch: boolean;
}

async function pack(blobDigest: string | undefined): Promise<PackResult> {
  const { meta, tree } = bootstrapEntry(blobDigest);
  const epoch = Math.floor(Date.parse(meta.history.created) / 1000);
  const file = join(runDir, 'layer');
  const tarArgs = `tar --sort=name --numeric-owner -C ${shq(tree)} -cf - .`;
  const gnuTarBytes = Number((await runChecked('tar | wc -c', 'sh', ['-c', `${tarArgs} | wc -c`], { env })).lines[0]?.line.trim());
  let entries = 0;

  const ours = async (compression: 'zstd' | 'gzip') => {
    await rm(file, { force: true });
    const t0 = performance.now();
    const list = await walkLayer(tree, { kind: 'rootfs', epoch });
    const walked = performance.now();
    const packed = await packLayer(list, file, compression);
    const t1 = performance.now();
    entries = list.length;
    return { ms: t1 - t0, walkMs: walked - t0, packed };
  };
  const gnu = async (compressor: string) => {
    await rm(file, { force: true });
    const run = await runChecked(`tar | ${compressor}`, 'sh', ['-c', `${tarArgs} | ${compressor} > ${shq(file)}`], { env });
    return { ms: run.ms, size: statSync(file).size };
  };

  // Untimed warm-up of each (page cache, JIT), which also checks that packing the cached tree
  // again gives the cached layer: the same diff_id and the same zstd blob digest.
  const check = await ours('zstd');
  const digestsMatch = check.packed.diffId === meta.diffId && (!meta.blobs.zstd || check.packed.digest === meta.blobs.zstd.digest);
  say(`pack: tree ${tree} (${entries} entries, vztpl tar ${(check.packed.tarSize / 1e6).toFixed(1)} MB, GNU tar ${(gnuTarBytes / 1e6).toFixed(1)} MB)`);
  say(`pack  warm-up  layer digest ${digestsMatch ? 'matches the cached layer' : `DIFFERS from the cached layer (diff_id ${check.packed.diffId} vs ${meta.diffId})`}`);
  await gnu('zstd -3 -T2 -q -c');

  const result: PackResult = {
    tree,
    entries,
    zstd: { vztpl: { ms: [], walkMs: [], tarBytes: check.packed.tarSize, outBytes: check.packed.size }, gnu: { ms: [], tarBytes: gnuTarBytes, outBytes: 0 } },
    gzip: { vztpl: { ms: [], walkMs: [], tarBytes: check.packed.tarSize, outBytes: 0 }, gnu: { ms: [], tarBytes: gnuTarBytes, outBytes: 0 } },
    digestsMatch,
  };
  const mbps = (bytes: number, ms: number) => `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
  const rounds = (n: number, what: 'zstd' | 'gzip', gnuCmd: string) => async () => {
    const side = result[what];
    for (let r = 1; r <= n; r++) {
      const a = await ours(what);
      side.vztpl.ms.push(a.ms);
      side.vztpl.walkMs!.push(a.walkMs);
      side.vztpl.outBytes = a.packed.size;
      say(`pack  ${r}/${n}  ${what} vztpl      ${secs(a.ms)}  (walk ${(a.walkMs / 1000).toFixed(2)}, pack ${((a.ms - a.walkMs) / 1000).toFixed(2)})  ${mbps(a.packed.tarSize, a.ms)}  -> ${(a.packed.size / 1e6).toFixed(1)} MB`);
      const b = await gnu(gnuCmd);
      side.gnu.ms.push(b.ms);
      side.gnu.outBytes = b.size;
      say(`pack  ${r}/${n}  ${what} tar|${gnuCmd.split(' ')[0]}${' '.repeat(Math.max(1, 6 - gnuCmd.split(' ')[0]!.length))}${secs(b.ms)}  ${mbps(gnuTarBytes, b.ms)}  -> ${(b.size / 1e6).toFixed(1)} MB`);
    }
  };
  say(`pack: walkLayer+packLayer vs ${tarArgs.replace(shq(tree), 'TREE')} | COMPRESSOR > FILE, alternated`);
  await rounds(PACK_ROUNDS, 'zstd', 'zstd -3 -T2 -q -c')();
  if (GZIP_ROUNDS > 0) await rounds(GZIP_ROUNDS, 'gzip', 'gzip -6 -n -c')();
  await rm(file, { force: true });
  return result;
}

// --- report -----------------------------------------------------------------------------------

function gitRevision(): string {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'builder', 'format', 'cli', 'common'], { cwd: REPO, encoding: 'utf8' }).trim();
    return dirty ? `${rev} (with uncommitted changes in builder/format/cli/common)` : rev;
  } catch {
    return 'unknown';
  }
}

function samples(ms: readonly number[]): string {
  return ms.map((m) => (m / 1000).toFixed(2)).join(', ');
}

function medianPhases(list: readonly Record<string, number>[]): string {
  const keys = Object.keys(list[0] ?? {});
  return keys.map((k) => `${k} ${(median(list.map((p) => p[k] ?? 0)) / 1000).toFixed(2)}`).join(', ');
}

async function main(): Promise<void> {
  const m = machine();
  const revision = gitRevision();
  say(`vztpl build benchmark, ${m.date}`);
  say(`machine: ${m.cores} cores (nproc), ${m.cpu}, kernel ${m.kernel}, node ${m.node}; load average before: ${m.load}; code ${revision}`);
  await mkdir(runDir, { recursive: true });
  await mkdir(cacheDir, { recursive: true });
  const recipe = join(runDir, 'debian-12-x86_64-bench.yaml');
  await writeFile(recipe, RECIPE);
  const started = performance.now();
  let c: ColdResult | undefined;
  let w: WarmResult | undefined;
  let p: PackResult | undefined;
  try {
    if (only.has('cold')) c = await cold(recipe);
    if (only.has('warm')) w = await warm(recipe);
    if (only.has('pack')) p = await pack(c?.blobDigest);
  } finally {
    await rm(runDir, { recursive: true, force: true });
  }
  const totalMs = performance.now() - started;
  const loadAfter = loadAverage();

  const rows: string[][] = [];
  if (c && c.vztpl.length) {
    const v = median(c.vztpl);
    const b = median(c.mmdebstrap);
    rows.push([`cold build, vztpl build --no-cache (median of ${c.vztpl.length})`, secs(v, 1), '', samples(c.vztpl)]);
    rows.push([`cold build, mmdebstrap alone (median of ${c.mmdebstrap.length})`, secs(b, 1), '', samples(c.mmdebstrap)]);
    rows.push(['cold overhead vztpl / mmdebstrap', ratio(v, b), `< 1.15x: ${v / b < 1.15 ? 'met' : 'NOT met'}`, `vztpl phases (median s): ${medianPhases(c.phases)}`]);
  }
  if (w && w.ms.length) {
    const v = median(w.ms);
    rows.push([`warm rebuild, whole CLI process (median of ${w.ms.length})`, secs(v, 2), `< 2 s: ${v < 2000 ? 'met' : 'NOT met'}`, `${samples(w.ms)}; phases (median s): ${medianPhases(w.phases)}`]);
  }
  if (p) {
    const mbps = (side: PackSide) => side.tarBytes / 1e6 / (median(side.ms) / 1000);
    for (const what of ['zstd', 'gzip'] as const) {
      const { vztpl, gnu } = p[what];
      if (!vztpl.ms.length) continue;
      const gnuName = what === 'zstd' ? 'tar | zstd -3 -T2' : 'tar | gzip -6';
      rows.push([`pack ${what}, walkLayer+packLayer (median of ${vztpl.ms.length})`, `${mbps(vztpl).toFixed(0)} MB/s`, '', `${secs(median(vztpl.ms))} (walk ${secs(median(vztpl.walkMs!))}); ${samples(vztpl.ms)}; ${(vztpl.outBytes / 1e6).toFixed(1)} MB out`]);
      rows.push([`pack ${what}, ${gnuName} (median of ${gnu.ms.length})`, `${mbps(gnu).toFixed(0)} MB/s`, '', `${secs(median(gnu.ms))}; ${samples(gnu.ms)}; ${(gnu.outBytes / 1e6).toFixed(1)} MB out`]);
      const r = mbps(vztpl) / mbps(gnu);
      rows.push([`pack ${what} throughput vztpl / GNU`, `${r.toFixed(2)}x`, what === 'zstd' ? `>= 1x: ${r >= 1 ? 'met' : 'NOT met'}` : '(information)', what === 'zstd' ? `layer digest ${p.digestsMatch ? 'matches the cache' : 'DIFFERS from the cache'}` : '']);
    }
  }
  const summary = table(['measurement', 'result', 'goal', 'details (s)'], rows);
  await report({
    heading: m.date,
    machine: m,
    loadAfter,
    totalMs,
    summary,
    record: !opt['no-results'],
    about: () =>
      `Code: ${revision}. Options: --rounds ${ROUNDS} --warm-rounds ${WARM_ROUNDS} --pack-rounds ${PACK_ROUNDS} --gzip-rounds ${GZIP_ROUNDS} --mirror ${opt.mirror}` +
      `${only.size < 3 ? ` --only ${opt.only}` : ''}. Total ${secs(totalMs, 0)}.` +
      (p ? ` Packed tree: ${p.entries} entries, ${(p.zstd.vztpl.tarBytes / 1e6).toFixed(1)} MB of tar.` : ''),
  });
}

runBench(main, () => rm(runDir, { recursive: true, force: true }));
