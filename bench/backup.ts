// Backup benchmark: a Debian 12 overlay container with 10 MB of changes, backed up to a vztpl
// registry (in process, fs storage) with `backupContainer` as `vztpl backup` calls it, against
// `tar -czf` of its whole root (the full-copy backup OpenVZ and Proxmox make); then a second
// backup after a 1 MB change (the incremental one), and the restore on a host that has the
// template cached: in process (restoreBackup) and as a whole `vztpl restore` process (from
// source). Bytes are those of blob uploads the registry received (Content-Length).
// Usage: node bench/backup.ts [--rounds 3] [--no-results]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, lstat, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RegistryClient } from '../client/registry-client.ts';
import { backupContainer, restoreBackup } from '../cache/backup.ts';
import { createContainer, destroyContainer } from '../cache/containers.ts';
import { RegistrySource } from '../cache/source.ts';
import { Store } from '../cache/store.ts';
import { buildServer } from '../registry/server.ts';
import { FsDriver } from '../registry/storage/fs.ts';
import { loadAverage, machine, median, ratio, runBench, runChecked, table } from './lib.ts';
import { buildTemplate, ms, REPO, report, requireDist, say, unmountAll } from './support.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    'cache-dir': { type: 'string', default: '/var/tmp/vztpl-test/build-cache' },
    'bench-dir': { type: 'string', default: '/var/tmp/vztpl-bench-backup' },
    'no-results': { type: 'boolean', default: false },
  },
});

const dir = opt['bench-dir'];
const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;

async function main(): Promise<void> {
  requireDist();
  const m = machine();
  const started = performance.now();
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  say('building debian-12-x86_64 (step cache)');
  const { layout } = await buildTemplate('debian-12-x86_64.yaml', opt['cache-dir'], join(dir, 'layout'));

  // The registry, counting upload bytes; the template published there.
  const built = await buildServer({ driver: new FsDriver({ root: join(dir, 'registry') }) });
  await built.app.listen({ host: '127.0.0.1', port: 0 });
  let uploaded = 0;
  built.app.server.on('request', (req: IncomingMessage) => {
    if (req.method !== 'GET' && req.method !== 'HEAD' && (req.url ?? '').includes('/blobs/uploads/')) uploaded += Number(req.headers['content-length']) || 0;
  });
  const registry = `http://127.0.0.1:${(built.app.server.address() as AddressInfo).port}`;
  const host = registry.slice('http://'.length);
  // Child processes run asynchronously: the registry answers from this process's event loop.
  const cliEnv = { ...process.env, PATH: `/usr/local/bin:${process.env.PATH}`, VZTPL_HOST_CONFIG: '/nonexistent' };
  await runChecked('vztpl push', process.execPath, [join(REPO, 'cli', 'main.ts'), 'push', layout.dir, `${host}/debian-12-x86_64:1.0.0`], { env: cliEnv });
  const client = new RegistryClient(registry);
  const sourceFor = async (id: string) => new RegistrySource(id, new RegistryClient(id));
  const { pull } = await import('../cache/pull.ts');

  const store = new Store(join(dir, 'store'));
  const template = await pull({ store, source: new RegistrySource(registry, client), name: 'debian-12-x86_64', request: '1.0.0' });
  await createContainer({ store, ctid: 'b1', template });
  const rootfs = join(store.containerDir('b1'), 'rootfs');
  // 10 MB of changes: a thousand files of 10 KB of base64 text (compresses as text does).
  await mkdir(join(rootfs, 'srv', 'data'), { recursive: true });
  for (let i = 0; i < 1000; i++) await writeFile(join(rootfs, 'srv', 'data', `f${i}.txt`), randomBytes(7_500).toString('base64'));

  // The full copy: tar -czf of the whole root.
  let t0 = performance.now();
  execFileSync('tar', ['-czf', join(dir, 'root.tar.gz'), '-C', rootfs, '.'], { stdio: 'ignore' });
  const tarMs = performance.now() - t0;
  const tarBytes = (await stat(join(dir, 'root.tar.gz'))).size;
  // The floor under any backup of this change: the changed files alone, compressed hard. No
  // backup can send fewer bytes than the change's own information.
  const floorBytes = Number(execFileSync('sh', ['-c', 'tar -cf - -C "$1" srv/data | zstd -19 -T2 -q -c | wc -c', 'floor', rootfs]).toString().trim());

  // The first backup: the template's layers mounted, the changes as one layer.
  uploaded = 0;
  t0 = performance.now();
  const first = await backupContainer({ store, ctid: 'b1', target: { client, registry, repository: 'backups/b1', tag: 'first' } });
  const firstMs = performance.now() - t0;
  const firstBytes = uploaded;

  // A second container whose 10 MB of changes are what a package install brings: the host's own
  // shared libraries (binaries compress as binaries do), and its first backup.
  await createContainer({ store, ctid: 'b2', template });
  const libs = join(store.containerDir('b2'), 'rootfs', 'opt', 'libs');
  await mkdir(libs, { recursive: true });
  let copied = 0;
  for (const name of (await readdir('/usr/lib/x86_64-linux-gnu')).sort()) {
    const from = join('/usr/lib/x86_64-linux-gnu', name);
    const st = await lstat(from);
    if (!st.isFile() || copied + st.size > 10_000_000) continue;
    await copyFile(from, join(libs, name));
    copied += st.size;
  }
  const libsTar = Number(execFileSync('sh', ['-c', 'tar -czf - -C "$1" . | wc -c', 'tar', join(store.containerDir('b2'), 'rootfs')]).toString().trim());
  uploaded = 0;
  t0 = performance.now();
  await backupContainer({ store, ctid: 'b2', target: { client, registry, repository: 'backups/b2', tag: 'first' } });
  const libsMs = performance.now() - t0;
  const libsBytes = uploaded;
  await destroyContainer(store, 'b2');

  // A 1 MB change, and the next backup (rounds of them: p50).
  const nextMs: number[] = [];
  const nextBytes: number[] = [];
  for (let i = 0; i < Number(opt.rounds); i++) {
    await writeFile(join(rootfs, 'srv', `change${i}`), randomBytes(1 << 20));
    uploaded = 0;
    t0 = performance.now();
    await backupContainer({ store, ctid: 'b1', target: { client, registry, repository: 'backups/b1', tag: `next${i}` } });
    nextMs.push(performance.now() - t0);
    nextBytes.push(uploaded);
  }

  // Restore on a host that has the template cached: in process, then as a vztpl process.
  const target = new Store(join(dir, 'target'));
  await pull({ store: target, source: new RegistrySource(registry, client), name: 'debian-12-x86_64', request: '1.0.0' });
  const restoreMs: number[] = [];
  const restoreCliMs: number[] = [];
  for (let i = 0; i < Number(opt.rounds); i++) {
    // Each round on a fresh copy of the cached host: the backup's layers are fetched every time.
    const hostRoot = join(dir, `target${i}`);
    execFileSync('cp', ['-a', `${target.root}/.`, `${hostRoot}/`], { stdio: 'ignore' });
    const s = new Store(hostRoot);
    t0 = performance.now();
    await restoreBackup({ store: s, ctid: 'r1', client, registry, repository: 'backups/b1', reference: 'first', sourceFor });
    restoreMs.push(performance.now() - t0);
    await destroyContainer(s, 'r1');
    const cliRoot = join(dir, `cli${i}`);
    execFileSync('cp', ['-a', `${target.root}/.`, `${cliRoot}/`], { stdio: 'ignore' });
    const r = await runChecked('vztpl restore', process.execPath, [join(REPO, 'cli', 'main.ts'), 'restore', `${host}/backups/b1:first`, 'r2', '--root', cliRoot], { env: cliEnv });
    restoreCliMs.push(r.ms);
    await destroyContainer(new Store(cliRoot), 'r2');
    await rm(hostRoot, { recursive: true, force: true });
    await rm(cliRoot, { recursive: true, force: true });
  }
  await destroyContainer(store, 'b1');
  await built.app.close();

  const own = first.layers.filter((l) => l.from.startsWith('snapshot')).reduce((n, l) => n + l.size, 0);
  const rows = [
    ['tar -czf of the whole root (full copy)', mb(tarBytes), ms(tarMs), '1'],
    ['the change alone, tar | zstd -19 (the floor)', mb(floorBytes), '', `${ratio(tarBytes, floorBytes)} fewer bytes: the most any backup can save`],
    ['vztpl backup, first (template layers mounted)', mb(firstBytes), ms(firstMs), `${ratio(tarBytes, firstBytes)} fewer bytes (${ratio(firstBytes, floorBytes)} the floor)`],
    [`the same with ${mb(copied)} of shared libraries instead: tar -czf of the root`, mb(libsTar), '', '1'],
    ['vztpl backup, first, of that container', mb(libsBytes), ms(libsMs), `${ratio(libsTar, libsBytes)} fewer bytes`],
    [`vztpl backup after a 1 MB change (p50 of ${nextMs.length})`, mb(median(nextBytes)), ms(median(nextMs)), `${ratio(tarBytes, median(nextBytes))} fewer bytes`],
    [`vztpl restore, template cached, in process (p50 of ${restoreMs.length})`, mb(own), ms(median(restoreMs)), 'goal < 1.5 s'],
    [`vztpl restore, template cached, whole process (p50 of ${restoreCliMs.length})`, mb(own), ms(median(restoreCliMs)), 'goal < 1.5 s'],
  ];
  const summary = [
    'Backup of a Debian 12 overlay container with 10 MB of changes (1000 files of 10 KB of base64 text; then, in a second container, 10 MB of the host\'s shared libraries) to a vztpl registry on 127.0.0.1 (in process), against `tar -czf` of its root; goals: at least 10x fewer bytes, restore under 1.5 s with the template cached. Bytes: blob uploads the registry received (backups) or the archive (tar); restore bytes: the backup\'s own layers fetched.',
    '',
    table(['operation', 'bytes', 'time', 'vs tar -czf'], rows),
  ].join('\n');
  await report({
    heading: `${m.date}: Backups (bench/backup.ts)`,
    machine: m,
    loadAfter: loadAverage(),
    totalMs: performance.now() - started,
    summary,
    about: () => `Stores, registry and archive on ${dir}; the whole-process restore runs the CLI from source (node cli/main.ts).`,
    record: !opt['no-results'],
  });
  await rm(dir, { recursive: true, force: true });
}

runBench(main, async () => {
  unmountAll(dir);
  await rm(dir, { recursive: true, force: true });
});
