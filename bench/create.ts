// Create benchmark: how fast a container exists once its template is on the host, in one run:
//   1. the create operation itself: cache/containers.ts createContainer, in process, for each
//      layout (overlay, reflink, copy) on a filesystem with reflinks: the bench directory's, or
//      else a loop-mounted XFS, where overlay and copy run too; and on the bench directory's own
//      filesystem (the host's root here) overlay, and copy with fewer rounds (--host-rounds);
//      the container is destroyed (untimed) after each;
//   2. untar of the flattened template (vztpl export to .tar.gz and .tar.zst), tar -xzf and
//      tar --zstd -xf into a fresh directory each round, on the same filesystems;
//   3. the whole `vztpl create` process (node dist/cli/main.js) against the whole `podman create`
//      process of the same image, pulled from the same registry into a private podman root;
//   4. pulling two templates that share a base (debian-12-x86_64 and debian-12-x86_64-web, built
//      `from:` it): vztpl pull of both into an empty store against skopeo copy of each to its own
//      oci: directory, with the bytes the registry sent for blob GETs (its /metrics) and seconds.
// Usage: node bench/create.ts [--rounds 50] [--only create,untar,process,pull] [--no-results]
import { execFileSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createContainer, destroyContainer, listContainers, type Layout as CtLayout } from '../cache/containers.ts';
import { Store, type TemplateRef } from '../cache/store.ts';
import { loadAverage, machine, median, ratio, runChecked, runTimed, running, secs, table, runBench } from './lib.ts';
import {
  CLI,
  REPO,
  report,
  buildTemplate,
  env,
  gitRevision,
  metric,
  ms,
  percentile,
  releaseBenchDir,
  requireDist,
  say,
  startVztpl,
  stopServers,
  waitForQuiet,
  type Layout,
  type Server,
} from './support.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '50' },
    'untar-rounds': { type: 'string', default: '50' },
    'process-rounds': { type: 'string', default: '50' },
    'pull-rounds': { type: 'string', default: '3' },
    'host-rounds': { type: 'string', default: '5' },
    only: { type: 'string', default: 'create,untar,process,pull' },
    base: { type: 'string', default: 'debian-12-x86_64.yaml' },
    flavor: { type: 'string', default: 'debian-12-x86_64-web.yaml' },
    'cache-dir': { type: 'string', default: '/var/tmp/vztpl-test/build-cache' },
    'bench-dir': { type: 'string', default: '/var/tmp/vztpl-bench' },
    'xfs-size': { type: 'string', default: '3G' },
    'wait-load': { type: 'string' },
    'no-results': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write(
    'Usage: node bench/create.ts [--rounds 50] [--untar-rounds 50] [--process-rounds 50] [--pull-rounds 3] [--host-rounds 5]\n' +
      '         [--only create,untar,process,pull] [--base debian-12-x86_64.yaml] [--flavor debian-12-x86_64-web.yaml]\n' +
      '         [--cache-dir /var/tmp/vztpl-test/build-cache] [--bench-dir /var/tmp/vztpl-bench] [--xfs-size 3G]\n' +
      '         [--wait-load 1.0] [--no-results]\n',
  );
  process.exit(0);
}
const ROUNDS = Number(opt.rounds);
const UNTAR_ROUNDS = Number(opt['untar-rounds']);
const PROCESS_ROUNDS = Number(opt['process-rounds']);
const PULL_ROUNDS = Number(opt['pull-rounds']);
/** Rounds of copy and untar on the host filesystem when a loop XFS carries the full runs. */
const HOST_ROUNDS = Number(opt['host-rounds']);
const WARMUP = 3;
const only = new Set(opt.only.split(','));
const runDir = join(opt['bench-dir'], `create-${process.pid}`);
const podmanDir = join(runDir, 'podman');
const xfsImage = join(runDir, 'xfs.img');
const xfsMount = join(runDir, 'xfs');

let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write('\ninterrupted: stopping the running command and cleaning up\n');
  for (const child of running) child.kill('SIGINT');
});

/** Stores whose containers the clean-up destroys. */
const stores: Store[] = [];

function podman(...args: string[]): string[] {
  return ['--root', join(podmanDir, 'root'), '--runroot', join(podmanDir, 'run'), '--tmpdir', join(podmanDir, 'tmp'), ...args];
}

async function cleanup(): Promise<void> {
  for (const store of stores) {
    for (const ct of await listContainers(store).catch(() => [])) await destroyContainer(store, ct.ctid).catch(() => undefined);
  }
  await stopServers();
  if (existsSync(join(podmanDir, 'root'))) {
    await runTimed('podman', podman('rm', '--all', '--force'), { env }).catch(() => undefined);
    await runTimed('podman', podman('rmi', '--all', '--force'), { env }).catch(() => undefined);
  }
  await releaseBenchDir(runDir, xfsImage);
}

function quantiles(xs: readonly number[]): { p50: number; p99: number; min: number; max: number } {
  return { p50: percentile(xs, 0.5), p99: percentile(xs, 0.99), min: percentile(xs, 0), max: percentile(xs, 1) };
}

function q(xs: readonly number[], digits = 1): string {
  const s = quantiles(xs);
  return `p50 ${ms(s.p50, digits)}, p99 ${ms(s.p99, digits)}`;
}

function spread(xs: readonly number[], digits = 1): string {
  const s = quantiles(xs);
  return `min ${s.min.toFixed(digits)}, max ${s.max.toFixed(digits)} ms; ${xs.length} samples`;
}

// --- setup ------------------------------------------------------------------------------------

/** A store with the base template pulled, on one filesystem. */
interface Place {
  store: Store;
  template: TemplateRef;
  /** Its filesystem, for the report. */
  fs: string;
  /** A directory on that filesystem for the runs' scratch files. */
  dir: string;
}

interface Setup {
  base: Layout;
  flavor: Layout;
  registry: Server;
  /** The store on the bench directory's filesystem. */
  host: Place;
  /** A store on a filesystem with reflinks: a loop-mounted XFS when the host's has none. */
  reflink: Place;
}

function fsType(path: string): string {
  return execFileSync('findmnt', ['-n', '-o', 'FSTYPE', '--target', path], { encoding: 'utf8' }).trim();
}

function hasReflinks(dir: string): boolean {
  const a = join(dir, '.reflink-probe');
  writeFileSync(a, 'probe');
  try {
    execFileSync('cp', ['--reflink=always', a, `${a}.2`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    execFileSync('rm', ['-f', a, `${a}.2`]);
  }
}

async function pullInto(root: string, reg: Server, layout: Layout) {
  return runChecked(`vztpl pull ${layout.name}`, process.execPath, [CLI, 'pull', `${reg.host}/${layout.name}@${layout.version}`, '--root', root], { cwd: REPO, env });
}

async function place(dir: string, fs: string, reg: Server, layout: Layout): Promise<Place> {
  const store = new Store(join(dir, 'store'));
  stores.push(store);
  const pulled = await pullInto(store.root, reg, layout);
  const template = (await store.refs()).find((r) => r.name === layout.name && r.version === layout.version);
  if (!template) throw new Error(`${layout.name}:${layout.version} is not in the store ${store.root}`);
  say(`store: ${store.root} (${fs}), ${layout.name} pulled in ${secs(pulled.ms)}`);
  return { store, template, fs, dir };
}

async function setup(): Promise<Setup> {
  const b = await buildTemplate(opt.base, opt['cache-dir'], join(runDir, 'layout-base'));
  const f = await buildTemplate(opt.flavor, opt['cache-dir'], join(runDir, 'layout-flavor'));
  for (const x of [b, f]) say(`template: ${x.layout.name}:${x.layout.version} built in ${secs(x.run.ms)} (${x.ranSteps ? `${x.ranSteps} steps ran` : 'every step cached'}), ${x.layout.blobs.length - 1} layers, ${(x.layout.bytes / 1e6).toFixed(1)} MB of blobs`);
  const shared = b.layout.blobs.slice(1).filter((l) => f.layout.blobs.some((m) => m.digest === l.digest)).length;
  say(`template: the flavor shares ${shared} of its ${f.layout.blobs.length - 1} layers with the base`);

  const registry = await startVztpl({ kind: 'fs', dir: join(runDir, 'registry') }, join(runDir, 'registry.log'));
  for (const l of [b.layout, f.layout]) await runChecked('vztpl push', process.execPath, [CLI, 'push', `${l.dir}:${l.version}`, `${registry.host}/${l.name}`], { cwd: REPO, env });
  say(`registry: vztpl serve at ${registry.url}, both templates pushed`);

  const host = await place(runDir, fsType(runDir), registry, b.layout);
  if (hasReflinks(runDir)) return { base: b.layout, flavor: f.layout, registry, host, reflink: host };
  await runChecked('truncate', 'truncate', ['-s', opt['xfs-size'], xfsImage], { env });
  await runChecked('mkfs.xfs', 'mkfs.xfs', ['-q', '-m', 'reflink=1', xfsImage], { env });
  await mkdir(xfsMount);
  await runChecked('mount', 'mount', ['-o', 'loop', xfsImage, xfsMount], { env });
  if (!hasReflinks(xfsMount)) throw new Error(`${xfsMount}: a fresh XFS without reflinks`);
  say(`${host.fs} has no reflinks: a ${opt['xfs-size']} XFS (reflink=1) loop-mounted at ${xfsMount}`);
  const reflink = await place(xfsMount, `xfs (loop, ${opt['xfs-size']})`, registry, b.layout);
  return { base: b.layout, flavor: f.layout, registry, host, reflink };
}

// --- 1. the create operation ------------------------------------------------------------------

interface CreateRun {
  layout: CtLayout;
  fs: string;
  create: number[];
  destroy: number[];
}

let ctCount = 0;
async function createRuns(s: Setup): Promise<CreateRun[]> {
  const plan: { layout: CtLayout; at: Place; rounds: number }[] = [
    { layout: 'overlay', at: s.reflink, rounds: ROUNDS },
    { layout: 'reflink', at: s.reflink, rounds: ROUNDS },
    { layout: 'copy', at: s.reflink, rounds: ROUNDS },
  ];
  if (s.reflink !== s.host) {
    plan.push({ layout: 'overlay', at: s.host, rounds: ROUNDS });
    plan.push({ layout: 'copy', at: s.host, rounds: HOST_ROUNDS });
  }
  const out: CreateRun[] = [];
  say(`create: createContainer in process after ${WARMUP} untimed rounds, destroyContainer (untimed for the create) after each`);
  for (const p of plan) {
    const run: CreateRun = { layout: p.layout, fs: p.at.fs, create: [], destroy: [] };
    for (let r = 1; r <= WARMUP + p.rounds; r++) {
      const ctid = `bench${++ctCount}`;
      const t0 = performance.now();
      await createContainer({ store: p.at.store, ctid, template: p.at.template, layout: p.layout });
      const t1 = performance.now();
      await destroyContainer(p.at.store, ctid);
      const t2 = performance.now();
      if (r > WARMUP) {
        run.create.push(t1 - t0);
        run.destroy.push(t2 - t1);
      }
    }
    say(`create  ${p.layout.padEnd(7)} on ${p.at.fs.padEnd(16)}  ${q(run.create, 1)}  (${spread(run.create)}); destroy p50 ${ms(percentile(run.destroy, 0.5))}`);
    out.push(run);
  }
  return out;
}

// --- 2. untar ---------------------------------------------------------------------------------

interface UntarRun {
  fs: string;
  gz: number[];
  zst: number[];
}

interface UntarResult {
  runs: UntarRun[];
  gzBytes: number;
  zstBytes: number;
  exportMs: { gz: number; zst: number };
}

async function untar(s: Setup): Promise<UntarResult> {
  const gzFile = join(runDir, 'template.tar.gz');
  const zstFile = join(runDir, 'template.tar.zst');
  const eg = await runChecked('vztpl export', process.execPath, [CLI, 'export', `${s.base.dir}:${s.base.version}`, '-o', gzFile], { cwd: REPO, env });
  const ez = await runChecked('vztpl export', process.execPath, [CLI, 'export', `${s.base.dir}:${s.base.version}`, '-o', zstFile], { cwd: REPO, env });
  const result: UntarResult = { runs: [], gzBytes: statSync(gzFile).size, zstBytes: statSync(zstFile).size, exportMs: { gz: eg.ms, zst: ez.ms } };
  say(`untar: vztpl export -> ${(result.gzBytes / 1e6).toFixed(1)} MB .tar.gz (${secs(eg.ms)}), ${(result.zstBytes / 1e6).toFixed(1)} MB .tar.zst (${secs(ez.ms)}); into a fresh directory each round, alternated, after one untimed round of each`);
  const plan: { at: Place; rounds: number }[] = [{ at: s.reflink, rounds: UNTAR_ROUNDS }];
  if (s.reflink !== s.host) plan.push({ at: s.host, rounds: HOST_ROUNDS });
  for (const { at, rounds } of plan) {
    const run: UntarRun = { fs: at.fs, gz: [], zst: [] };
    const one = async (kind: 'gz' | 'zst', timed: boolean) => {
      const dir = join(at.dir, 'untar');
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir);
      const args = kind === 'gz' ? ['-xzf', gzFile, '-C', dir] : ['--zstd', '-xf', zstFile, '-C', dir];
      const t = await runChecked(`tar ${args.join(' ')}`, 'tar', args, { env });
      await rm(dir, { recursive: true, force: true });
      if (timed) run[kind].push(t.ms);
    };
    await one('gz', false);
    await one('zst', false);
    for (let r = 1; r <= rounds; r++) {
      const order: ('gz' | 'zst')[] = r % 2 ? ['gz', 'zst'] : ['zst', 'gz'];
      for (const kind of order) await one(kind, true);
      if (r % 10 === 0 || r === rounds) say(`untar  ${at.fs.padEnd(16)} ${r}/${rounds}  .tar.gz ${q(run.gz, 0)}   .tar.zst ${q(run.zst, 0)}`);
    }
    result.runs.push(run);
  }
  return result;
}

// --- 3. whole processes -----------------------------------------------------------------------

interface ProcessResult {
  vztpl: number[];
  podman: number[];
  podmanPullMs: number;
  startup: { node: number[]; podman: number[] };
}

async function processes(s: Setup): Promise<ProcessResult> {
  const image = `${s.registry.host}/${s.base.name}:${s.base.version}`;
  for (const d of ['root', 'run', 'tmp']) await mkdir(join(podmanDir, d), { recursive: true });
  const pulled = await runChecked('podman pull', 'podman', podman('pull', '--quiet', '--tls-verify=false', image), { env });
  const result: ProcessResult = { vztpl: [], podman: [], podmanPullMs: pulled.ms, startup: { node: [], podman: [] } };
  say(`process: podman pull ${image} into ${podmanDir} in ${secs(pulled.ms)}; ${PROCESS_ROUNDS} rounds of each whole process, alternated, after ${WARMUP} untimed ones`);
  const vztpl = async (timed: boolean) => {
    const ctid = `proc${++ctCount}`;
    const run = await runChecked('vztpl create', process.execPath, [CLI, 'create', ctid, '--ostemplate', `${s.registry.host}/${s.base.name}@${s.base.version}`, '--root', s.host.store.root], { cwd: REPO, env });
    await destroyContainer(s.host.store, ctid);
    if (timed) result.vztpl.push(run.ms);
  };
  const pod = async (timed: boolean) => {
    const run = await runChecked('podman create', 'podman', podman('create', image, '/bin/true'), { env });
    const id = run.lines.map((l) => l.line.trim()).filter(Boolean).at(-1);
    if (!id) throw new Error('podman create printed no container id');
    await runChecked('podman rm', 'podman', podman('rm', id), { env });
    if (timed) result.podman.push(run.ms);
  };
  for (let r = 0; r < WARMUP; r++) {
    await vztpl(false);
    await pod(false);
  }
  for (let r = 1; r <= PROCESS_ROUNDS; r++) {
    if (r % 2) {
      await vztpl(true);
      await pod(true);
    } else {
      await pod(true);
      await vztpl(true);
    }
    if (r % 10 === 0 || r === PROCESS_ROUNDS) say(`process  ${r}/${PROCESS_ROUNDS}  vztpl create ${q(result.vztpl, 0)}   podman create ${q(result.podman, 0)}`);
  }
  // Where the whole process's time goes: the runtimes' own start-up.
  for (let r = 0; r < 10; r++) {
    result.startup.node.push((await runChecked('vztpl --version', process.execPath, [CLI, '--version'], { env })).ms);
    result.startup.podman.push((await runChecked('podman --version', 'podman', ['--version'], { env })).ms);
  }
  say(`process  start-up: node dist/cli/main.js --version p50 ${ms(percentile(result.startup.node, 0.5), 0)}, podman --version p50 ${ms(percentile(result.startup.podman, 0.5), 0)}`);
  return result;
}

// --- 4. pulling two templates that share a base -----------------------------------------------

interface PullSide {
  /** Blob bytes the registry sent: for the base, for the flavor. */
  bytes: [number, number][];
  ms: [number, number][];
}

async function pulls(s: Setup): Promise<{ vztpl: PullSide; skopeo: PullSide }> {
  const result = { vztpl: { bytes: [], ms: [] } as PullSide, skopeo: { bytes: [], ms: [] } as PullSide };
  const sent = () => metric(s.registry, 'vztpl_http_sent_bytes_total', { route: 'v2_blob' });
  say(`pull: ${s.base.name} then ${s.flavor.name}; vztpl pull into an empty store vs skopeo copy of each to its own oci: dir, on ${s.reflink.fs}, ${PULL_ROUNDS} rounds, alternated`);
  const both = async (kind: 'vztpl' | 'skopeo', r: number) => {
    const dir = join(s.reflink.dir, `pull-${kind}-${r}`);
    await mkdir(dir);
    const times: number[] = [];
    const bytes: number[] = [];
    for (const l of [s.base, s.flavor]) {
      const before = await sent();
      const run =
        kind === 'vztpl'
          ? await pullInto(dir, s.registry, l)
          : await runChecked('skopeo copy', 'skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${s.registry.host}/${l.name}:${l.version}`, `oci:${join(dir, l.name)}:${l.version}`], { env });
      bytes.push((await sent()) - before);
      times.push(run.ms);
    }
    await rm(dir, { recursive: true, force: true });
    result[kind].bytes.push([bytes[0]!, bytes[1]!]);
    result[kind].ms.push([times[0]!, times[1]!]);
    say(`pull  ${r}/${PULL_ROUNDS}  ${kind.padEnd(6)}  ${((bytes[0]! + bytes[1]!) / 1e6).toFixed(1)} MB sent (base ${(bytes[0]! / 1e6).toFixed(1)}, flavor ${(bytes[1]! / 1e6).toFixed(1)}) in ${secs(times[0]! + times[1]!)} (base ${secs(times[0]!)}, flavor ${secs(times[1]!)})`);
  };
  for (let r = 1; r <= PULL_ROUNDS; r++) {
    const order: ('vztpl' | 'skopeo')[] = r % 2 ? ['vztpl', 'skopeo'] : ['skopeo', 'vztpl'];
    for (const kind of order) await both(kind, r);
  }
  return result;
}

// --- report -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (opt['wait-load']) await waitForQuiet(Number(opt['wait-load']));
  const m = machine();
  const revision = gitRevision();
  say(`vztpl create benchmark, ${m.date}`);
  say(`machine: ${m.cores} cores (nproc), ${m.cpu}, kernel ${m.kernel}, node ${m.node}; load average before: ${m.load}; code ${revision}`);
  requireDist();
  await mkdir(runDir, { recursive: true });
  const started = performance.now();
  let s: Setup | undefined;
  let c: CreateRun[] | undefined;
  let u: UntarResult | undefined;
  let p: ProcessResult | undefined;
  let d: Awaited<ReturnType<typeof pulls>> | undefined;
  try {
    s = await setup();
    if (only.has('create')) c = await createRuns(s);
    if (only.has('untar')) u = await untar(s);
    if (only.has('process')) p = await processes(s);
    if (only.has('pull')) d = await pulls(s);
  } finally {
    await cleanup();
  }
  const totalMs = performance.now() - started;
  const loadAfter = loadAverage();

  const rows: string[][] = [];
  const overlayOn = (fs: string) => c?.find((run) => run.layout === 'overlay' && run.fs === fs);
  for (const run of c ?? []) {
    const x = quantiles(run.create);
    const goal = run.layout === 'overlay' ? `p50 < 20 ms: ${x.p50 < 20 ? 'met' : 'NOT met'}` : '';
    rows.push([`create op, ${run.layout} on ${run.fs} (${run.create.length} rounds)`, `p50 ${ms(x.p50)}, p99 ${ms(x.p99)}`, goal, `${spread(run.create)}; destroy p50 ${ms(percentile(run.destroy, 0.5))}`]);
  }
  for (const run of u?.runs ?? []) {
    rows.push([`untar .tar.gz on ${run.fs}, tar -xzf (${run.gz.length} rounds)`, q(run.gz, 0), '', `${spread(run.gz, 0)}; ${(u!.gzBytes / 1e6).toFixed(1)} MB file (vztpl export ${secs(u!.exportMs.gz)})`]);
    rows.push([`untar .tar.zst on ${run.fs}, tar --zstd -xf (${run.zst.length} rounds)`, q(run.zst, 0), '', `${spread(run.zst, 0)}; ${(u!.zstBytes / 1e6).toFixed(1)} MB file (vztpl export ${secs(u!.exportMs.zst)})`]);
    const overlay = overlayOn(run.fs);
    if (overlay) {
      const r = percentile(run.gz, 0.5) / percentile(overlay.create, 0.5);
      rows.push([`untar .tar.gz / overlay create op on ${run.fs} (p50)`, `${r.toFixed(0)}x`, `>= 50x: ${r >= 50 ? 'met' : 'NOT met'}`, `untar .tar.zst / overlay create op: ${(percentile(run.zst, 0.5) / percentile(overlay.create, 0.5)).toFixed(0)}x`]);
    }
  }
  if (p) {
    rows.push([`whole process, vztpl create (overlay, ${p.vztpl.length} rounds)`, q(p.vztpl, 0), '', `${spread(p.vztpl, 0)}; node dist/cli/main.js --version alone p50 ${ms(percentile(p.startup.node, 0.5), 0)}`]);
    rows.push([`whole process, podman create (${p.podman.length} rounds)`, q(p.podman, 0), '', `${spread(p.podman, 0)}; podman --version alone p50 ${ms(percentile(p.startup.podman, 0.5), 0)}; podman pull ${secs(p.podmanPullMs)}`]);
    const r = percentile(p.podman, 0.5) / percentile(p.vztpl, 0.5);
    rows.push(['whole process podman / vztpl (p50)', `${r.toFixed(2)}x`, `> 1x (vztpl faster): ${r > 1 ? 'met' : 'NOT met'}`, `p99: ${ratio(percentile(p.podman, 0.99), percentile(p.vztpl, 0.99))}`]);
  }
  if (d && s) {
    const sum = (xs: [number, number][]) => xs.map(([a, b]) => a + b);
    for (const kind of ['vztpl', 'skopeo'] as const) {
      const side = d[kind];
      const bytes = median(sum(side.bytes));
      const base = median(side.bytes.map((x) => x[0]));
      const flavor = median(side.bytes.map((x) => x[1]));
      const what = kind === 'vztpl' ? `vztpl pull of both into one empty store on ${s.reflink.fs} (downloads and extracts)` : 'skopeo copy of each to its own oci: dir (downloads only)';
      rows.push([
        `pull base + flavor, ${what} (median of ${side.ms.length})`,
        `${(bytes / 1e6).toFixed(1)} MB, ${secs(median(sum(side.ms)))}`,
        '',
        `blob bytes sent for the base ${(base / 1e6).toFixed(1)} MB, the flavor ${(flavor / 1e6).toFixed(1)} MB; seconds ${sum(side.ms).map((x) => (x / 1000).toFixed(2)).join(', ')}`,
      ]);
    }
    rows.push([
      'pull bytes skopeo / vztpl',
      ratio(median(sum(d.skopeo.bytes)), median(sum(d.vztpl.bytes))),
      '(information)',
      `seconds skopeo / vztpl ${ratio(median(sum(d.skopeo.ms)), median(sum(d.vztpl.ms)))}; the flavor alone: ${(s.flavor.bytes / 1e6).toFixed(1)} MB of blobs, ${((s.flavor.bytes - s.base.bytes) / 1e6).toFixed(1)} MB more than the base's`,
    ]);
  }
  const summary = table(['measurement', 'result', 'goal', 'details'], rows);
  await report({
    heading: `${m.date}: create (bench/create.ts)`,
    machine: m,
    loadAfter,
    totalMs,
    summary,
    record: !opt['no-results'] && Boolean(s),
    about: () =>
      `Code: ${revision}. Options: --rounds ${ROUNDS} --untar-rounds ${UNTAR_ROUNDS} --process-rounds ${PROCESS_ROUNDS} --pull-rounds ${PULL_ROUNDS}` +
      `${only.size < 4 ? ` --only ${opt.only}` : ''}. Total ${secs(totalMs, 0)}. ` +
      `Template: ${s!.base.name}:${s!.base.version} (recipes/${opt.base}), ${s!.base.blobs.length - 1} layers, ${(s!.base.bytes / 1e6).toFixed(1)} MB of blobs; ` +
      `flavor ${s!.flavor.name} (recipes/${opt.flavor}). Host store on ${s!.host.fs}${s!.reflink !== s!.host ? `; reflink store on ${s!.reflink.fs}` : ''}; vztpl create and podman create on ${s!.host.fs}.`,
  });
}

runBench(main, cleanup);
