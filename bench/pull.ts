// Host pull benchmark (issue 15): how long a host without the template takes to have it, in one
// run against its peers and its floor, all from one vztpl serve (fs) on 127.0.0.1:
//   - `vztpl pull` into an empty store (whole process: verified, safely extracted, durable);
//   - `podman pull` into an empty private storage (overlay);
//   - the floor: `skopeo copy docker://... oci:DIR` (the fetch alone) plus `zstd -dc LAYER |
//     tar -x` of the same layers one after another (the extraction alone, no checks, no sync),
//     and, for information, the same with `sync -f` after it (what durability costs tar), and
//     the same work as vztpl's with the standard tools: both digests checked (sha256sum of the
//     blob, and of the tar through tee), then the sync.
// Every store is on a fresh ext4 of its own (a loop device with direct I/O, so a sync reaches the
// disk), and each round writes into directories of its own, removed only with the filesystem:
// ext4 keeps inodes freed in the last seconds from reuse, and creating thousands of files where
// thousands were just deleted (as every test run on this machine does) is several times slower
// for whoever comes next. Rounds alternate the methods, each after a `sync` (untimed), so that
// none pays for writing back what another left dirty (vztpl syncs the filesystem it wrote).
// Usage: node bench/pull.ts [--rounds 5] [--recipe debian-12-x86_64.yaml] [--no-results]
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadAverage, machine, median, ratio, runBench, runChecked, runTimed, secs, table } from './lib.ts';
import { CLI, REPO, buildTemplate, env, gitRevision, report, requireDist, say, releaseBenchDir, startVztpl, stopServers } from './support.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    recipe: { type: 'string', default: 'debian-12-x86_64.yaml' },
    'cache-dir': { type: 'string', default: '/var/tmp/vztpl-test/build-cache' },
    'bench-dir': { type: 'string', default: '/var/tmp/vztpl-bench-pull' },
    'fs-size': { type: 'string', default: '12G' },
    'no-results': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (opt.help) {
  process.stdout.write('Usage: node bench/pull.ts [--rounds 5] [--recipe debian-12-x86_64.yaml] [--cache-dir DIR] [--bench-dir DIR] [--no-results]\n');
  process.exit(0);
}
const ROUNDS = Number(opt.rounds);
const benchDir = opt['bench-dir'];
const fsImage = `${benchDir}.img`;
/** Where every method writes: the fresh ext4. */
const dir = join(benchDir, 'fs');

function podmanArgs(root: string, ...args: string[]): string[] {
  return ['--root', join(root, 'root'), '--runroot', join(root, 'run'), '--tmpdir', join(root, 'tmp'), '--storage-driver', 'overlay', ...args];
}

/** The layer digests of the image skopeo wrote to an oci: directory, in order. */
function ociLayers(ociDir: string): string[] {
  const index = JSON.parse(readFileSync(join(ociDir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(join(ociDir, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers.map((l) => join(ociDir, 'blobs', 'sha256', l.digest.slice(7)));
}

const UNTAR = 'set -e; out="$1"; shift; mkdir -p "$out"; for l in "$@"; do zstd -dcq "$l" | tar -x --numeric-owner -p -C "$out"; done';
/** UNTAR with both digests computed on the way (bash for the process substitution), then the sync. */
const UNTAR_CHECKED =
  'set -e; out="$1"; shift; mkdir -p "$out"; for l in "$@"; do sha256sum "$l" >/dev/null; zstd -dcq "$l" | tee >(sha256sum >/dev/null) | tar -x --numeric-owner -p -C "$out"; done; sync -f "$out"';

async function cleanup(): Promise<void> {
  await stopServers();
  if (existsSync(join(dir, 'podman'))) {
    for (const name of readdirSync(join(dir, 'podman'))) {
      await runTimed('podman', podmanArgs(join(dir, 'podman', name), 'rmi', '--all', '--force'), { env }).catch(() => undefined);
    }
  }
  await releaseBenchDir(benchDir, fsImage);
  await rm(fsImage, { force: true });
}

async function main(): Promise<void> {
  requireDist();
  const m = machine();
  const started = performance.now();
  await cleanup();
  await mkdir(dir, { recursive: true });
  await runChecked('truncate', 'truncate', ['-s', opt['fs-size'], fsImage], { env });
  await runChecked('mkfs.ext4', 'mkfs.ext4', ['-q', '-F', fsImage], { env });
  const loop = (await runChecked('losetup', 'losetup', ['--find', '--show', '--direct-io=on', fsImage], { env })).lines.map((l) => l.line.trim()).find(Boolean)!;
  await runChecked('mount', 'mount', [loop, dir], { env });
  // The mount keeps the device; detached with it.
  await runChecked('losetup', 'losetup', ['-d', loop], { env });
  say(`building ${opt.recipe} (step cache ${opt['cache-dir']})`);
  const { layout } = await buildTemplate(opt.recipe, opt['cache-dir'], join(dir, 'layout'));
  const reg = await startVztpl({ kind: 'fs', dir: join(dir, 'registry') }, join(dir, 'registry.log'));
  await runChecked('vztpl push', process.execPath, [CLI, 'push', layout.dir, `${reg.host}/${layout.name}:${layout.version}`, '--no-sbom'], { cwd: REPO, env });
  const image = `${reg.host}/${layout.name}:${layout.version}`;
  say(`${image}: ${layout.blobs.length - 1} layers, ${(layout.bytes / 1e6).toFixed(1)} MB; ${ROUNDS} rounds, alternated, each into new directories`);

  const t = { vztpl: [] as number[], podman: [] as number[], fetch: [] as number[], untar: [] as number[], untarSync: [] as number[], untarChecked: [] as number[] };
  const settle = () => runChecked('sync', 'sync', [], { env });
  for (let r = 1; r <= ROUNDS; r++) {
    await settle();
    const vz = await runChecked('vztpl pull', process.execPath, [CLI, '--root', join(dir, 'vztpl', `r${r}`), 'pull', `${reg.host}/${layout.name}@${layout.version}`], { cwd: REPO, env });
    t.vztpl.push(vz.ms);
    const podRoot = join(dir, 'podman', `r${r}`);
    for (const d of ['root', 'run', 'tmp']) await mkdir(join(podRoot, d), { recursive: true });
    await settle();
    const pod = await runChecked('podman pull', 'podman', podmanArgs(podRoot, 'pull', '--quiet', '--tls-verify=false', image), { env });
    t.podman.push(pod.ms);
    const oci = join(dir, 'skopeo', `r${r}`);
    await mkdir(join(dir, 'skopeo'), { recursive: true });
    await settle();
    const fetch = await runChecked('skopeo copy', 'skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${image}`, `oci:${oci}`], { env });
    t.fetch.push(fetch.ms);
    const layers = ociLayers(oci);
    await settle();
    const untar = await runChecked('zstd | tar', 'sh', ['-c', UNTAR, 'sh', join(dir, 'untar', `r${r}`), ...layers], { env });
    t.untar.push(untar.ms);
    await settle();
    const synced = await runChecked('zstd | tar; sync -f', 'sh', ['-c', `${UNTAR}; sync -f "$out"`, 'sh', join(dir, 'untar-sync', `r${r}`), ...layers], { env });
    t.untarSync.push(synced.ms);
    await settle();
    const checked = await runChecked('sha256sum; zstd | tee >(sha256sum) | tar; sync -f', 'bash', ['-c', UNTAR_CHECKED, 'bash', join(dir, 'untar-checked', `r${r}`), ...layers], { env });
    t.untarChecked.push(checked.ms);
    say(`round ${r}/${ROUNDS}: vztpl ${secs(vz.ms)}, podman ${secs(pod.ms)}, skopeo ${secs(fetch.ms)} + untar ${secs(untar.ms)} (with sync ${secs(synced.ms)}, with the checks and sync ${secs(checked.ms)})`);
  }

  const med = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)])) as Record<keyof typeof t, number>;
  const floor = median(t.fetch.map((f, i) => f + t.untar[i]!));
  const floorSync = median(t.fetch.map((f, i) => f + t.untarSync[i]!));
  const floorChecked = median(t.fetch.map((f, i) => f + t.untarChecked[i]!));
  const all = (xs: number[]) => xs.map((x) => secs(x)).join(', ');
  const vsFloor = med.vztpl / floor;
  const vsPodman = med.podman / med.vztpl;
  const rows = [
    ['vztpl pull into an empty store (verified, extracted, synced)', secs(med.vztpl), `${ratio(med.vztpl, floor)} the floor`, vsFloor <= 1.2 ? '<= 1.2x floor: met' : '<= 1.2x floor: NOT met', all(t.vztpl)],
    ['podman pull into an empty storage', secs(med.podman), `${ratio(med.podman, floor)} the floor`, vsPodman >= 1.5 ? `vztpl ${vsPodman.toFixed(2)}x faster (>= 1.5x): met` : `vztpl ${vsPodman.toFixed(2)}x faster (>= 1.5x): NOT met`, all(t.podman)],
    ['floor: skopeo copy to oci: + zstd -dc | tar -x of each layer', secs(floor), '1.00x', '(floor)', ''],
    ['  skopeo copy docker:// -> oci: (fetch only)', secs(med.fetch), '', '', all(t.fetch)],
    ['  zstd -dc | tar -x, layer after layer', secs(med.untar), '', '', all(t.untar)],
    ['floor with sync -f after the extraction (information)', secs(floorSync), `${ratio(floorSync, floor)} the floor`, `vztpl ${ratio(med.vztpl, floorSync)} of it`, all(t.untarSync)],
    ["floor with vztpl's checks: sha256sum, zstd -dc | tee >(sha256sum) | tar -x, sync -f (information)", secs(floorChecked), `${ratio(floorChecked, floor)} the floor`, `vztpl ${ratio(med.vztpl, floorChecked)} of it`, all(t.untarChecked)],
  ];
  const summary = table(['measurement', 'median', 'vs floor', 'goal', 'all rounds (s)'], rows);
  await report({
    heading: `${m.date}: host pull (bench/pull.ts)`,
    machine: m,
    loadAfter: loadAverage(),
    totalMs: performance.now() - started,
    summary,
    record: !opt['no-results'],
    about: () =>
      `Code: ${gitRevision()}. Options: --rounds ${ROUNDS}. Template: ${layout.name}:${layout.version} (recipes/${opt.recipe}), ${layout.blobs.length - 1} zstd layers, ${(layout.bytes / 1e6).toFixed(1)} MB of blobs; registry: vztpl serve (fs) on 127.0.0.1; every store on a fresh ext4 (${opt['fs-size']} loop device with direct I/O on ${benchDir}.img).`,
  });
  await cleanup();
}

runBench(main, cleanup);
