// Packing and export benchmark (issue 15), each against its GNU peer in the same run:
//   1. packing the Debian 12 bootstrap layer's tree: the builder's path (layerEntries streamed
//      into packLayer, zstd) and the walk-then-pack path, in process, vs
//      `tar --sort=name --numeric-owner -cf - . | zstd -3 -T2`; alternated; goal >= 1x throughput.
//      Also the CPU each side uses, and the floor under vztpl's packing on this machine: the CPU
//      of the work it cannot skip (zstd frames, the two SHA-256 digests, reading the files,
//      the walk) spread over every core.
//   2. `vztpl export LAYOUT -o X.tar.gz` as a whole process (dist/) vs `tar -czf` of the same
//      flattened tree extracted on disk; alternated; goal: vztpl at least as fast.
// The template is recipes/debian-12-x86_64.yaml built with the shared build cache.
// Usage: node bench/pack.ts [--rounds 5] [--export-rounds 3] [--wait-load 1.0] [--no-results]
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { zstdFrame } from '../format/compress.ts';
import { BatchPool, FrameQueue } from '../format/frames.ts';
import { packLayer, tarChunks, type LayerEntries, type PackedLayer } from '../format/tar/pack.ts';
import { layerEntries, walkLayer } from '../format/tar/walk.ts';
import { machine, median, runChecked, secs, table, loadAverage, runBench } from './lib.ts';
import { buildTemplate, CLI, env, gitRevision, REPO, report, requireDist, say, waitForQuiet } from './support.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'export-rounds': { type: 'string', default: '3' },
    'cache-dir': { type: 'string', default: '/var/tmp/vztpl-test/build-cache' },
    'bench-dir': { type: 'string', default: '/var/tmp/vztpl-bench' },
    'wait-load': { type: 'string' },
    'no-results': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  say('Usage: node bench/pack.ts [--rounds 5] [--export-rounds 3] [--cache-dir /var/tmp/vztpl-test/build-cache] [--bench-dir /var/tmp/vztpl-bench] [--wait-load 1.0] [--no-results]');
  process.exit(0);
}
const ROUNDS = Number(opt.rounds);
const EXPORT_ROUNDS = Number(opt['export-rounds']);
const runDir = join(opt['bench-dir'], `pack-${process.pid}`);

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

interface Timed {
  ms: number;
  /** CPU time (user + system) in ms. */
  cpu: number;
}

/** Runs a shell command line; its CPU is the shell's reaped children (the whole pipeline), from /proc. */
async function shell(what: string, cmd: string): Promise<Timed> {
  const run = await runChecked(what, 'sh', ['-c', `${cmd} && cat /proc/$$/stat`], { env });
  const stat = run.lines.at(-1)!.line.split(') ')[1]!.split(' ');
  // cutime and cstime: fields 16 and 17 of stat, 14 and 15 after the command name.
  return { ms: run.ms, cpu: ((Number(stat[13]) + Number(stat[14])) * 1000) / 100 };
}

async function inProcess<T>(fn: () => Promise<T>): Promise<Timed & { value: T }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { ms, cpu: (c.user + c.system) / 1000, value };
}

interface StepMeta {
  treeKind: string;
  treeDir?: string;
  diffId?: string;
  blobs: { zstd?: { digest: string } };
  history: { created: string };
}

/** The step cache entry whose zstd blob is the given layer: its tree, epoch and digests. */
function cachedTree(cacheDir: string, blobDigest: string): { tree: string; epoch: number; meta: StepMeta } {
  const steps = join(cacheDir, 'steps');
  for (const key of readdirSync(steps)) {
    const file = join(steps, key, 'step.json');
    if (!existsSync(file)) continue;
    const meta = JSON.parse(readFileSync(file, 'utf8')) as StepMeta;
    if (meta.blobs.zstd?.digest !== blobDigest) continue;
    return { tree: join(steps, key, meta.treeDir ?? 'tree'), epoch: Math.floor(Date.parse(meta.history.created) / 1000), meta };
  }
  throw new Error(`no step cache entry in ${steps} has the layer ${blobDigest}`);
}

// --- 1. packing -------------------------------------------------------------------------------

interface PackResult {
  entries: number;
  tarBytes: number;
  outBytes: number;
  gnuOutBytes: number;
  streamed: Timed[];
  listed: Timed[];
  gnu: Timed[];
  digestsMatch: boolean;
  /** CPU ms of each part of vztpl's packing, measured alone. */
  parts: Record<string, number>;
}

async function pack(tree: string, epoch: number, meta: StepMeta): Promise<PackResult> {
  const file = join(runDir, 'layer');
  const gnuFile = join(runDir, 'layer.gnu');
  const opts = { kind: 'rootfs' as const, epoch };
  const ours = (entries: () => Promise<LayerEntries> | LayerEntries) => inProcess(async () => packLayer(await entries(), file, 'zstd'));
  const streamed = () => ours(() => layerEntries(tree, opts));
  const listed = () => ours(() => walkLayer(tree, opts));
  const gnu = () => shell('tar | zstd', `tar --sort=name --numeric-owner -C ${shq(tree)} -cf - . | zstd -3 -T2 -q -c > ${shq(gnuFile)}`);

  // Untimed warm-up of each (page cache, JIT); it also checks that both paths give the cached layer.
  const a = (await streamed()).value;
  const b = (await listed()).value;
  const same = (p: PackedLayer) => p.diffId === meta.diffId && p.digest === meta.blobs.zstd?.digest;
  const digestsMatch = same(a) && same(b);
  await gnu();
  const entries = await walkLayer(tree, opts);
  say(`pack: ${tree}: ${entries.length} entries, ${(a.tarSize / 1e6).toFixed(1)} MB of tar; layer digests ${digestsMatch ? 'match the cached layer' : 'DIFFER from the cached layer'}`);

  const result: PackResult = { entries: entries.length, tarBytes: a.tarSize, outBytes: a.size, gnuOutBytes: statSync(gnuFile).size, streamed: [], listed: [], gnu: [], digestsMatch, parts: {} };
  const line = (r: number, what: string, t: Timed) =>
    say(`pack  ${r}/${ROUNDS}  ${what.padEnd(26)} ${secs(t.ms)}  cpu ${secs(t.cpu)}  ${(a.tarSize / 1e6 / (t.ms / 1000)).toFixed(0)} MB/s`);
  for (let r = 1; r <= ROUNDS; r++) {
    // The order rotates, so that none of the three always follows the same one.
    const order = [
      ['streamed', streamed],
      ['listed', listed],
      ['gnu', gnu],
    ] as const;
    for (let i = 0; i < order.length; i++) {
      const [what, fn] = order[(i + r) % order.length]!;
      const t = await fn();
      result[what].push({ ms: t.ms, cpu: t.cpu });
      line(r, what === 'gnu' ? 'tar | zstd -3 -T2' : `vztpl ${what}`, t);
    }
  }

  // The parts, alone and in memory where they can be: what packing cannot do without.
  const chunks = [...tarChunks(entries)];
  const frames: Buffer[] = [];
  const pool = new BatchPool();
  const parts: [string, () => Promise<unknown> | unknown][] = [
    ['walk (readdir, lstat; getfattr not counted)', () => walkLayer(tree, opts)],
    // Into reused batches, as packLayer does (fresh 4 MiB buffers would add page faults and GC).
    [
      'tar assembly (headers, reading the files)',
      () => {
        for (const chunk of tarChunks(entries, pool)) pool.give(chunk);
      },
    ],
    [
      'zstd frames, 3 in flight',
      async () => {
        frames.length = 0;
        const q = new FrameQueue(zstdFrame, async (piece) => void frames.push(piece));
        for (const c of chunks) await q.push(c);
        await q.finish();
      },
    ],
    ['sha256 of the tar (diff_id)', () => chunks.reduce((h, c) => h.update(c), createHash('sha256')).digest()],
    ['sha256 of the blob (digest)', () => frames.reduce((h, c) => h.update(c), createHash('sha256')).digest()],
  ];
  for (const [name, fn] of parts) {
    const cpu: number[] = [];
    for (let r = 0; r < 3; r++) cpu.push((await inProcess(async () => fn())).cpu);
    result.parts[name] = median(cpu);
    say(`pack  part  ${name.padEnd(46)} cpu ${secs(median(cpu), 3)}`);
  }
  await rm(file, { force: true });
  await rm(gnuFile, { force: true });
  return result;
}

// --- 2. export --------------------------------------------------------------------------------

interface ExportResult {
  ours: Timed[];
  gnu: Timed[];
  outBytes: number;
  gnuOutBytes: number;
  tarBytes: number;
  valid: string;
}

async function exportGz(layoutDir: string): Promise<ExportResult> {
  const tar = join(runDir, 'flat.tar');
  const flat = join(runDir, 'flat');
  const ours = join(runDir, 'vztpl.tar.gz');
  const theirs = join(runDir, 'gnu.tar.gz');
  await runChecked('vztpl export', process.execPath, [CLI, 'export', layoutDir, '-o', tar], { env });
  await mkdir(flat);
  await runChecked('tar -x', 'tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tar, '-C', flat], { env });
  const vztpl = () => shell('vztpl export', `${shq(process.execPath)} ${shq(CLI)} export ${shq(layoutDir)} -o ${shq(ours)} 2>/dev/null`);
  const gnu = () => shell('tar -cz', `tar --numeric-owner -C ${shq(flat)} -czf ${shq(theirs)} .`);
  // Untimed warm-up of each; the export must read back whole with the host's tools.
  await vztpl();
  await gnu();
  await runChecked('gzip -t', 'gzip', ['-t', ours], { env });
  await runChecked('zcat | cmp', 'sh', ['-c', `zcat ${shq(ours)} | cmp - ${shq(tar)}`], { env });
  const result: ExportResult = { ours: [], gnu: [], outBytes: statSync(ours).size, gnuOutBytes: statSync(theirs).size, tarBytes: statSync(tar).size, valid: 'gzip -t passes; zcat gives the .tar export' };
  say(`export: ${(result.tarBytes / 1e6).toFixed(1)} MB of tar; ${result.valid}`);
  for (let r = 1; r <= EXPORT_ROUNDS; r++) {
    const pair = [
      ['ours', vztpl],
      ['gnu', gnu],
    ] as const;
    for (const [what, fn] of r % 2 ? pair : [...pair].reverse()) {
      const t = await fn();
      result[what].push(t);
      say(`export  ${r}/${EXPORT_ROUNDS}  ${(what === 'ours' ? 'vztpl export -o .tar.gz' : 'tar -czf').padEnd(24)} ${secs(t.ms)}  cpu ${secs(t.cpu)}`);
    }
  }
  return result;
}

// --- report -----------------------------------------------------------------------------------

const samples = (ts: readonly Timed[]) => ts.map((t) => (t.ms / 1000).toFixed(2)).join(', ');
const med = (ts: readonly Timed[], k: keyof Timed) => median(ts.map((t) => t[k]));

async function main(): Promise<void> {
  requireDist();
  if (opt['wait-load']) await waitForQuiet(Number(opt['wait-load']));
  const m = machine();
  const revision = gitRevision();
  say(`vztpl pack and export benchmark, ${m.date}; load average before: ${m.load}; code ${revision}`);
  await mkdir(runDir, { recursive: true });
  const started = performance.now();
  let p: PackResult;
  let e: ExportResult;
  try {
    const { layout } = await buildTemplate('debian-12-x86_64.yaml', opt['cache-dir'], join(runDir, 'layout'));
    const bootstrap = layout.blobs[1]!.digest;
    const { tree, epoch, meta } = cachedTree(opt['cache-dir'], bootstrap);
    p = await pack(tree, epoch, meta);
    e = await exportGz(layout.dir);
  } finally {
    await rm(runDir, { recursive: true, force: true });
  }
  const totalMs = performance.now() - started;
  const loadAfter = loadAverage();

  const mbps = (ts: readonly Timed[]) => p.tarBytes / 1e6 / (med(ts, 'ms') / 1000);
  const cores = m.cores;
  const partsCpu = Object.values(p.parts).reduce((s, x) => s + x, 0);
  const digestsCpu = Object.entries(p.parts).filter(([k]) => k.startsWith('sha256')).reduce((s, [, x]) => s + x, 0);
  const floor = partsCpu / cores;
  const gnuMs = med(p.gnu, 'ms');
  const rows: string[][] = [];
  const packRow = (what: string, ts: readonly Timed[], extra = '') =>
    rows.push([`${what} (median of ${ts.length})`, `${mbps(ts).toFixed(0)} MB/s`, '', `${secs(med(ts, 'ms'))}, cpu ${secs(med(ts, 'cpu'))}; ${samples(ts)}${extra}`]);
  packRow('pack zstd, layerEntries streamed into packLayer', p.streamed, `; ${(p.outBytes / 1e6).toFixed(1)} MB out`);
  packRow('pack zstd, walkLayer then packLayer', p.listed);
  packRow('pack zstd, tar --sort=name | zstd -3 -T2', p.gnu, `; ${(p.gnuOutBytes / 1e6).toFixed(1)} MB out`);
  const r = mbps(p.streamed) / mbps(p.gnu);
  rows.push(['pack zstd throughput vztpl (streamed) / GNU', `${r.toFixed(2)}x`, `>= 1x: ${r >= 1 ? 'met' : 'NOT met'}`, `layer digests ${p.digestsMatch ? 'match the cache' : 'DIFFER from the cache'}; walk then pack: ${(mbps(p.listed) / mbps(p.gnu)).toFixed(2)}x`]);
  rows.push([
    `floor under vztpl's packing: CPU of its parts / ${cores} cores`,
    secs(floor),
    '',
    `${Object.entries(p.parts).map(([k, v]) => `${k} ${secs(v, 3)}`).join(', ')}; ${(p.tarBytes / 1e6 / (floor / 1000)).toFixed(0)} MB/s = ${(gnuMs / floor).toFixed(2)}x GNU at best`,
  ]);
  rows.push([
    'the same floor without the two SHA-256 digests',
    secs((partsCpu - digestsCpu) / cores),
    '',
    `${(gnuMs / ((partsCpu - digestsCpu) / cores)).toFixed(2)}x GNU at best; GNU's pipeline uses cpu ${secs(med(p.gnu, 'cpu'))}`,
  ]);
  const eo = med(e.ours, 'ms');
  const eg = med(e.gnu, 'ms');
  rows.push([`export .tar.gz, vztpl export whole process (median of ${e.ours.length})`, secs(eo), '', `cpu ${secs(med(e.ours, 'cpu'))}; ${samples(e.ours)}; ${(e.outBytes / 1e6).toFixed(1)} MB out; ${e.valid}`]);
  rows.push([`export .tar.gz, tar -czf of the flattened tree (median of ${e.gnu.length})`, secs(eg), '', `cpu ${secs(med(e.gnu, 'cpu'))}; ${samples(e.gnu)}; ${(e.gnuOutBytes / 1e6).toFixed(1)} MB out; ${(e.tarBytes / 1e6).toFixed(1)} MB of tar`]);
  rows.push(['export speed vztpl / tar -cz', `${(eg / eo).toFixed(2)}x`, `>= 1x: ${eg / eo >= 1 ? 'met' : 'NOT met'}`, '']);
  await report({
    heading: `${m.date}: pack and export (bench/pack.ts)`,
    machine: m,
    loadAfter,
    totalMs,
    summary: table(['measurement', 'result', 'goal', 'details'], rows),
    record: !opt['no-results'],
    about: () =>
      `Code: ${revision}. Options: --rounds ${ROUNDS} --export-rounds ${EXPORT_ROUNDS}. Total ${secs(totalMs, 0)}. ` +
      `Packed tree: the Debian 12 bootstrap layer (${p.entries} entries, ${(p.tarBytes / 1e6).toFixed(1)} MB of tar); exported: debian-12-x86_64 (4 layers).`,
  });
}

runBench(main, () => rm(runDir, { recursive: true, force: true }));
