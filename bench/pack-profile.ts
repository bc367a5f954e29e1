// Where packing a layer spends its time: each stage of walkLayer + packLayer alone, with wall
// and CPU time (whole process, main thread, GC), and Node's zstd against the zstd program on
// the same bytes. For the programs, only wall time is meaningful (their CPU is not ours).
// Usage: node bench/pack-profile.ts [TREE] [--rounds N]   (TREE: default the bench cache's bootstrap tree)
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PerformanceObserver } from 'node:perf_hooks';
import { zstdFrame } from '../format/compress.ts';
import { packLayer, tarChunks } from '../format/tar/pack.ts';
import { walkLayer } from '../format/tar/walk.ts';
import { median, runChecked } from './lib.ts';

const { values: opt, positionals } = parseArgs({ allowPositionals: true, options: { rounds: { type: 'string', default: '5' } } });
const ROUNDS = Number(opt.rounds);

function defaultTree(): { tree: string; epoch: number } {
  const steps = '/var/tmp/vztpl-bench/cache/steps';
  for (const key of existsSync(steps) ? readdirSync(steps) : []) {
    const file = join(steps, key, 'step.json');
    if (!existsSync(file)) continue;
    const meta = JSON.parse(readFileSync(file, 'utf8')) as { treeKind: string; treeDir?: string; history: { created: string } };
    if (meta.treeKind === 'rootfs') return { tree: join(steps, key, meta.treeDir ?? 'tree'), epoch: Math.floor(Date.parse(meta.history.created) / 1000) };
  }
  throw new Error('no bootstrap tree: run node bench/build.ts first or give TREE');
}

const { tree, epoch } = positionals[0] ? { tree: positionals[0], epoch: 2 ** 31 - 1 } : defaultTree();
const dir = await mkdtemp(join(tmpdir(), 'vztpl-pack-profile-'));

interface Sample {
  wall: number;
  cpu: number;
  main: number;
  gc: number;
}
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });
const results = new Map<string, Sample[]>();

async function measure(name: string, fn: () => Promise<unknown> | unknown): Promise<void> {
  const samples: Sample[] = [];
  await fn(); // warm-up
  for (let i = 0; i < ROUNDS; i++) {
    const c0 = process.cpuUsage();
    const m0 = process.threadCpuUsage();
    const g0 = gcMs;
    const t0 = performance.now();
    await fn();
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const m = process.threadCpuUsage(m0);
    await new Promise((resolve) => setTimeout(resolve, 10)); // let GC entries arrive
    samples.push({ wall, cpu: (c.user + c.system) / 1000, main: (m.user + m.system) / 1000, gc: gcMs - g0 });
  }
  results.set(name, samples);
  const w = median(samples.map((s) => s.wall));
  const cpu = median(samples.map((s) => s.cpu));
  const main = median(samples.map((s) => s.main));
  const gc = median(samples.map((s) => s.gc));
  const ms = (v: number) => `${v.toFixed(0).padStart(5)} ms`;
  process.stdout.write(`${name.padEnd(52)} wall ${ms(w)}  cpu: process ${ms(cpu)}, main thread ${ms(main)}, gc ${ms(gc)}\n`);
}

try {
  const entries = await walkLayer(tree, { kind: 'rootfs', epoch });
  const chunks = [...tarChunks(entries)];
  const tarBytes = chunks.reduce((n, c) => n + c.length, 0);
  const tarFile = join(dir, 'layer.tar');
  writeFileSync(tarFile, Buffer.concat(chunks));
  process.stdout.write(`tree ${tree}: ${entries.length} entries, ${(tarBytes / 1e6).toFixed(1)} MB of tar, ${chunks.length} chunks; UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '(default 4)'}\n`);

  await measure('walkLayer (readdir, lstat, getfattr)', () => walkLayer(tree, { kind: 'rootfs', epoch }));
  await measure('tarChunks (headers + readSync of every file)', () => {
    for (const _ of tarChunks(entries));
  });
  await measure('sha256 of the tar (in memory)', () => {
    const h = createHash('sha256');
    for (const c of chunks) h.update(c);
    h.digest();
  });
  await measure('zstd frames, one at a time (in memory)', async () => {
    for (const c of chunks) await zstdFrame(c);
  });
  await measure('zstd frames, all at once on the pool (in memory)', () => Promise.all(chunks.map((c) => zstdFrame(c))));
  await measure('zstd frames, 3 in flight (in memory)', async () => {
    const inFlight: Promise<Buffer[]>[] = [];
    for (const c of chunks) {
      inFlight.push(zstdFrame(c));
      if (inFlight.length >= 3) await inFlight.shift();
    }
    await Promise.all(inFlight);
  });
  await measure('packLayer zstd (entries already walked)', () => packLayer(entries, join(dir, 'out'), 'zstd'));
  await measure('walkLayer + packLayer zstd', async () => packLayer(await walkLayer(tree, { kind: 'rootfs', epoch }), join(dir, 'out'), 'zstd'));
  const sh = (name: string, cmd: string) => measure(`${name} (process wall)`, () => runChecked(name, 'sh', ['-c', cmd]));
  await sh('zstd -3 -T1 of the tar file', `zstd -3 -T1 -q -c ${tarFile} > ${dir}/z`);
  await sh('zstd -3 -T2 of the tar file', `zstd -3 -T2 -q -c ${tarFile} > ${dir}/z`);
  await sh('tar | cat > /dev/null', `tar --sort=name --numeric-owner -C ${tree} -cf - . | cat > /dev/null`);
  await sh('tar | zstd -3 -T2', `tar --sort=name --numeric-owner -C ${tree} -cf - . | zstd -3 -T2 -q -c > ${dir}/z`);
  await sh('tar | sha256sum', `tar --sort=name --numeric-owner -C ${tree} -cf - . | sha256sum > /dev/null`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
