// Snapshot benchmark: how long `vztpl snapshot` and `vztpl rollback` take on a Debian 12
// container with a 10 MB change, in one run against what a full copy costs on the same disk
// (a copy-based snapshot, as hosts without layered storage make: `cp -a` of the container's
// root, and `tar -czf` of it, the backup OpenVZ and Proxmox make). Each operation runs in process
// (cache/snapshots.ts), as the CLI calls it, `--rounds` times; the container is mounted again
// between rounds as it is in use.
// Usage: node bench/snapshot.ts [--rounds 30] [--no-results]
import { execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createContainer, destroyContainer } from '../cache/containers.ts';
import { rollbackContainer, snapshotContainer } from '../cache/snapshots.ts';
import { Store } from '../cache/store.ts';
import { loadAverage, machine, median, ratio, runBench, table } from './lib.ts';
import { buildTemplate, ms, percentile, report, requireDist, say, unmountAll } from './support.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '30' },
    'copy-rounds': { type: 'string', default: '3' },
    'cache-dir': { type: 'string', default: '/var/tmp/vztpl-test/build-cache' },
    'bench-dir': { type: 'string', default: '/var/tmp/vztpl-bench-snapshot' },
    'no-results': { type: 'boolean', default: false },
  },
});

const dir = opt['bench-dir'];

async function main(): Promise<void> {
  requireDist();
  const m = machine();
  const started = performance.now();
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  say('building debian-12-x86_64 (step cache)');
  const { layout } = await buildTemplate('debian-12-x86_64.yaml', opt['cache-dir'], join(dir, 'layout'));
  const store = new Store(join(dir, 'store'));
  const { pull } = await import('../cache/pull.ts');
  const { LayoutSource } = await import('../cache/source.ts');
  const template = await pull({ store, source: new LayoutSource(layout.dir), name: 'debian-12-x86_64' });
  await createContainer({ store, ctid: 'b1', template });
  const rootfs = store.containerDir('b1') + '/rootfs';
  // A 10 MB change: a thousand files of 10 KB.
  await mkdir(join(rootfs, 'srv', 'data'), { recursive: true });
  for (let i = 0; i < 1000; i++) await writeFile(join(rootfs, 'srv', 'data', `f${i}`), Buffer.alloc(10_000, i % 251));

  const rounds = Number(opt.rounds);
  const snapshotMs: number[] = [];
  const rollbackMs: number[] = [];
  await snapshotContainer(store, 'b1', 'base');
  for (let i = 0; i < rounds; i++) {
    // Changes above the snapshot, then a snapshot of them, then back to base.
    await writeFile(join(rootfs, 'srv', 'data', `round${i}`), Buffer.alloc(10_000, 7));
    let t0 = performance.now();
    await snapshotContainer(store, 'b1', `r${i}`);
    snapshotMs.push(performance.now() - t0);
    t0 = performance.now();
    await rollbackContainer(store, 'b1', 'base');
    rollbackMs.push(performance.now() - t0);
  }

  // The floor a copy-based snapshot stands on: copying the whole root, and tar -czf of it.
  const copyMs: number[] = [];
  const tarMs: number[] = [];
  for (let i = 0; i < Number(opt['copy-rounds']); i++) {
    const target = join(dir, `copy${i}`);
    let t0 = performance.now();
    execFileSync('cp', ['-a', `${rootfs}/.`, target + '/'], { stdio: 'ignore' });
    copyMs.push(performance.now() - t0);
    await rm(target, { recursive: true, force: true });
    t0 = performance.now();
    execFileSync('tar', ['-czf', join(dir, 'root.tar.gz'), '-C', rootfs, '.'], { stdio: 'ignore' });
    tarMs.push(performance.now() - t0);
  }
  await destroyContainer(store, 'b1');

  const p50 = (xs: number[]) => median(xs);
  const rows = [
    ['vztpl snapshot', ms(p50(snapshotMs)), ms(percentile(snapshotMs, 0.9)), '1'],
    ['vztpl rollback', ms(p50(rollbackMs)), ms(percentile(rollbackMs, 0.9)), ratio(p50(rollbackMs), p50(snapshotMs))],
    ['cp -a of the root (a copy snapshot)', ms(p50(copyMs)), ms(percentile(copyMs, 0.9)), ratio(p50(copyMs), p50(snapshotMs))],
    ['tar -czf of the root (a full backup)', ms(p50(tarMs)), ms(percentile(tarMs, 0.9)), ratio(p50(tarMs), p50(snapshotMs))],
  ];
  const summary = [
    `Snapshot and rollback of a Debian 12 overlay container with a 10 MB change (${rounds} rounds; copies ${opt['copy-rounds']}); goal: p50 under 50 ms.`,
    '',
    table(['operation', 'p50', 'p90', 'vs snapshot'], rows),
  ].join('\n');
  await report({
    heading: `${m.date}: Snapshots (bench/snapshot.ts)`,
    machine: m,
    loadAfter: loadAverage(),
    totalMs: performance.now() - started,
    summary,
    about: () => `Store and copies on ${dir}.`,
    record: !opt['no-results'],
  });
  await rm(dir, { recursive: true, force: true });
}

runBench(main, async () => {
  unmountAll(dir);
  await rm(dir, { recursive: true, force: true });
});
