// End to end: `vztpl build` of a small Debian 12 template with the real mmdebstrap against
// deb.debian.org, real overlayfs steps and skopeo reading the result. The step and package cache
// is shared with the other build tests (test/helpers/build-env.ts), so a warm run downloads
// nothing and rebuilds the bootstrap layer only where a test asks for it (--refresh, --no-cache).
// Needs root, mmdebstrap, skopeo, getfattr/setfattr and network access to the Debian mirror.
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, type BuildResult } from '../../builder/build.ts';
import { findProgram } from '../../common/run.ts';
import { OciLayout } from '../../format/layout.ts';
import {
  BUILD_CACHE,
  buildDone,
  cacheTmpEntries,
  cliBuild,
  execOk,
  isRoot,
  mountsMentioning,
  outputLeftovers,
  parseEvents,
  processesMatching,
  runCli,
  spawnCli,
  stepDones,
  tempDir,
  waitForEvent,
  writeFiles,
  type Event,
} from '../helpers/build-env.ts';
import { applyLayout, layerTar, readTar, type ApplyStats } from '../helpers/oci-apply.ts';
import { listOverlay, listTree } from '../helpers/tree-listing.ts';

const exists = (p: string) => lstat(p).then(
  () => true,
  () => false,
);
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const HEADER = [
  'name: debian-12-x86_64-e2e',
  'version: 1.0.0',
  'description: vztpl end-to-end test template',
  'bootstrap:',
  '  tool: mmdebstrap',
  '  suite: bookworm',
  '  mirror: http://deb.debian.org/debian',
  '  variant: minbase',
  'labels:',
  '  org.example.test: build-debian',
  'steps:',
  '  - install: [netbase]',
];

/** The run step of the main recipe: a whiteout, an opaque dir, links, and per-machine state to clean. */
const EDIT_STEP = [
  '  - name: edit the base',
  '    run: |',
  '      set -e',
  '      rm /etc/issue.net',
  '      rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo x > /etc/apt/apt.conf.d/99test',
  '      mkdir /opt/vztpl-test',
  '      ln -s /etc/os-release /opt/vztpl-test/os-release-link',
  '      echo linked > /opt/vztpl-test/a && ln /opt/vztpl-test/a /opt/vztpl-test/b',
  '      # per-machine state the cleanup must remove or reset',
  '      echo 0123456789abcdef0123456789abcdef > /etc/machine-id',
  '      mkdir -p /etc/ssh && echo key > /etc/ssh/ssh_host_ed25519_key && echo pub > /etc/ssh/ssh_host_ed25519_key.pub',
  '      echo noise > /var/log/vztpl-test.log',
  '      echo deb > /var/cache/apt/archives/fake_1.0_amd64.deb',
  '      echo index > /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages',
];

const COPY_STEP = ['  - copy:', '      src: files/hello.txt', '      dest: /etc/vztpl-hello.txt', '      mode: "0640"'];

const recipe = (...steps: string[][]) => `${[...HEADER, ...steps.flat()].join('\n')}\n`;
const MAIN_RECIPE = recipe(EDIT_STEP, COPY_STEP);

const STEP_TITLES = ['bootstrap mmdebstrap bookworm (minbase)', 'install netbase', 'edit the base', 'copy files/hello.txt to /etc/vztpl-hello.txt'];

const cachedFlags = (events: Event[]) => stepDones(events).map((e) => e.cached);

/**
 * The cache outlives a run: a step this run must see rerun carries this run's id, or the
 * previous run's entry would serve it.
 */
const RUN_ID = randomBytes(6).toString('hex');

describe.skipIf(!isRoot || !findProgram('mmdebstrap') || !findProgram('skopeo'))('vztpl build: a Debian 12 template', () => {
  let work: string;
  /** The main recipe's directory, its first build's output and events. */
  let recipeDir: string;
  let recipeFile: string;
  let out1: string;
  let events1: Event[];
  let manifest1: string;

  beforeAll(async () => {
    work = await tempDir('build-debian');
    recipeDir = join(work, 'recipe');
    recipeFile = join(recipeDir, 'recipe.yaml');
    await writeFiles(recipeDir, { 'recipe.yaml': MAIN_RECIPE, 'files/hello.txt': 'hello from the recipe\n' });
    out1 = join(work, 'out1');
    const t0 = performance.now();
    const first = await cliBuild(recipeFile, out1);
    console.log(`first build: ${((performance.now() - t0) / 1000).toFixed(1)} s (cached steps: ${cachedFlags(first.events).join(',')})`);
    events1 = first.events;
    manifest1 = first.done.digest;
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe('the built template', () => {
    let inProcess: BuildResult;
    let applied: string;
    let applyStats: ApplyStats[];
    let epoch: number;

    beforeAll(async () => {
      // The same recipe in-process: all cache hits, and the layer trees to compare with.
      inProcess = await build({ recipe: recipeFile, cacheDir: BUILD_CACHE, out: join(work, 'out1-inprocess') });
      epoch = Date.parse(inProcess.config.created ?? '') / 1000;
      expect(epoch).toBeGreaterThan(1_600_000_000);
      applied = join(work, 'applied');
      const t0 = performance.now();
      applyStats = (await applyLayout(out1, applied)).layers;
      console.log(`applied ${applyStats.length} layers in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    });

    it('reports its progress as NDJSON events', async () => {
      expect(events1[0]).toMatchObject({ event: 'build-start', name: 'debian-12-x86_64-e2e', version: '1.0.0', recipe: recipeFile, steps: 4 });
      const starts = events1.filter((e) => e.event === 'step-start');
      expect(starts.map((e) => e.event === 'step-start' && [e.index, e.total, e.title])).toEqual(STEP_TITLES.map((t, i) => [i + 1, 4, t]));
      const dones = stepDones(events1);
      expect(dones.map((e) => [e.index, e.title, e.emptyLayer])).toEqual(STEP_TITLES.map((t, i) => [i + 1, t, false]));
      for (const d of dones) expect(d.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      // Every step-start comes before its step-done, in order.
      const order = events1.filter((e) => e.event === 'step-start' || e.event === 'step-done').map((e) => `${e.event}:${(e as { index: number }).index}`);
      expect(order).toEqual([1, 2, 3, 4].flatMap((i) => [`step-start:${i}`, `step-done:${i}`]));
      const done = buildDone(events1)!;
      expect(events1.at(-1)).toBe(done);
      expect(done).toMatchObject({ name: 'debian-12-x86_64-e2e', out: out1, layers: 4 });
      const index = JSON.parse(await readFile(join(out1, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      expect(index.manifests.map((m) => m.digest)).toEqual([done.digest]);
      // The in-process build of the same recipe gives the same image.
      expect(inProcess.manifestDigest).toBe(done.digest);
      expect(inProcess.manifest.layers.map((l) => l.digest)).toEqual(dones.map((d) => d.digest));
    });

    it('is read by skopeo: inspect shows the layers, copy to dir: works', async () => {
      const info = JSON.parse(await execOk('skopeo', ['inspect', `oci:${out1}`])) as { Layers: string[]; Labels: Record<string, string>; Architecture: string; Os: string };
      expect(info.Layers).toEqual(inProcess.manifest.layers.map((l) => l.digest));
      expect(info.Layers).toHaveLength(4);
      expect(info).toMatchObject({ Architecture: 'amd64', Os: 'linux' });
      expect(info.Labels['org.openvz.template.distro']).toBe('debian');
      const raw = JSON.parse(await execOk('skopeo', ['inspect', '--raw', `oci:${out1}`])) as { layers: { mediaType: string }[] };
      expect(raw.layers.map((l) => l.mediaType)).toEqual(Array(4).fill('application/vnd.oci.image.layer.v1.tar+zstd'));

      const copied = join(work, 'skopeo-dir');
      await execOk('skopeo', ['copy', '--quiet', `oci:${out1}`, `dir:${copied}`]);
      const manifest = JSON.parse(await readFile(join(copied, 'manifest.json'), 'utf8')) as { layers: { digest: string }[] };
      expect(manifest.layers.map((l) => l.digest)).toEqual(info.Layers);
      for (const layer of manifest.layers) {
        expect(sha256(await readFile(join(copied, layer.digest.slice(7))))).toBe(layer.digest);
      }
    });

    it("applied in order, the layers give exactly the build's own tree (its cached layers as an overlayfs)", async () => {
      const trees = inProcess.layers.filter((l) => !l.emptyLayer).map((l) => l.tree);
      expect(trees).toHaveLength(4);
      const mountpoint = join(work, 'overlay-view');
      await mkdir(mountpoint);
      const merged = await listOverlay([...trees].reverse(), mountpoint, epoch);
      const mine = listTree(applied, epoch);
      expect(mine.length).toBeGreaterThan(1000);
      expect(mine).toEqual(merged);

      // What the comparison covers: a whiteout and an opaque directory in the run step's layer.
      expect(applyStats[2]).toMatchObject({ whiteouts: ['etc/issue.net'], opaques: ['etc/apt/apt.conf.d'] });
      expect(await exists(join(trees[0]!, 'etc/issue.net'))).toBe(true);
      expect((await readdir(join(trees[0]!, 'etc/apt/apt.conf.d'))).length).toBeGreaterThan(0);
      expect(await exists(join(applied, 'etc/issue.net'))).toBe(false);
      expect(merged.some((l) => l.startsWith('etc/issue.net\t'))).toBe(false);
      expect(await readdir(join(applied, 'etc/apt/apt.conf.d'))).toEqual(['99test']);
      expect(await readFile(join(applied, 'etc/apt/apt.conf.d/99test'), 'utf8')).toBe('x\n');
      expect(await readlink(join(applied, 'opt/vztpl-test/os-release-link'))).toBe('/etc/os-release');
      const [a, b] = await Promise.all([stat(join(applied, 'opt/vztpl-test/a')), stat(join(applied, 'opt/vztpl-test/b'))]);
      expect(b.ino).toBe(a.ino);
      expect(a.nlink).toBe(2);
      const hello = await stat(join(applied, 'etc/vztpl-hello.txt'));
      expect(hello.mode & 0o7777).toBe(0o640);
      expect([hello.uid, hello.gid]).toEqual([0, 0]);
      expect(await readFile(join(applied, 'etc/vztpl-hello.txt'), 'utf8')).toBe('hello from the recipe\n');
    });

    it('runs: chroot into the applied layers', async () => {
      const out = await execOk('chroot', [applied, '/bin/sh', '-c', 'cat /etc/os-release']);
      expect(out).toContain('VERSION_CODENAME=bookworm');
    });

    it('has a config with history per step, labels, the recipe digest and the package lock', async () => {
      const { config, manifest, descriptor } = await new OciLayout(out1).resolve();
      expect(descriptor.digest).toBe(manifest1);
      expect(config.architecture).toBe('amd64');
      expect(config.os).toBe('linux');
      expect(config.history?.map((h) => h.comment)).toEqual(STEP_TITLES);
      expect(config.history?.every((h) => h.created === config.created && !h.empty_layer)).toBe(true);
      expect(config.history?.[1]?.created_by).toContain('install');
      const recipeDigest = sha256(await readFile(recipeFile));
      expect(config.config?.Labels).toMatchObject({
        'org.openvz.template.distro': 'debian',
        'org.openvz.template.release': '12',
        'org.openvz.template.arch': 'x86_64',
        'org.openvz.template.flavor': 'e2e',
        'org.openvz.template.recipe-digest': recipeDigest,
        'org.opencontainers.image.title': 'debian-12-x86_64-e2e',
        'org.opencontainers.image.version': '1.0.0',
        'org.example.test': 'build-debian',
      });
      // rootfs.diff_ids are the digests of the uncompressed layer tars.
      expect(config.rootfs.diff_ids).toHaveLength(manifest.layers.length);
      for (const [i, layer] of manifest.layers.entries()) expect(sha256(await layerTar(out1, layer))).toBe(config.rootfs.diff_ids[i]);

      const meta = config['org.openvz.template']!;
      expect(meta).toMatchObject({ name: 'debian-12-x86_64-e2e', version: '1.0.0', distro: 'debian', release: '12', arch: 'x86_64', family: 'deb', recipeDigest });
      const lock = meta.packages;
      const names = lock.map((p) => p.name);
      expect(names).toContain('netbase');
      expect(names).toContain('dpkg');
      expect(names).toEqual([...names].sort());
      // The lock is exactly what dpkg in the template says is installed.
      const dpkg = await execOk('chroot', [applied, 'dpkg-query', '-W', '-f=${Package}\\t${Version}\\t${Architecture}\\n']);
      const installed = dpkg
        .trim()
        .split('\n')
        .map((l) => {
          const [name, version, arch] = l.split('\t');
          return { name, version, arch };
        })
        .sort((x, y) => (x.name! < y.name! ? -1 : 1));
      expect(lock).toEqual(installed);
      expect(lock.find((p) => p.name === 'netbase')?.version).toMatch(/^6\.4/);
    });

    it('carries no per-machine state, no device nodes, no package caches and nothing of the build', async () => {
      const { manifest } = await new OciLayout(out1).resolve();
      const first = await readTar(await layerTar(out1, manifest.layers[0]!));
      const names = first.map((e) => e.header.name.replace(/\/$/, ''));
      expect(names).toContain('dev');
      expect(names.filter((n) => n.startsWith('dev/'))).toEqual([]);
      expect(names.filter((n) => n.startsWith('proc/') || n.startsWith('sys/'))).toEqual([]);
      expect(first.filter((e) => e.header.type === 'character-device' || e.header.type === 'block-device')).toEqual([]);
      // The injected build layer (host resolv.conf, policy-rc.d) never reaches a layer.
      for (const layer of manifest.layers) {
        const entries = (await readTar(await layerTar(out1, layer))).map((e) => e.header.name);
        expect(entries).not.toContain('usr/sbin/policy-rc.d');
      }
      expect(await readFile(join(applied, 'etc/resolv.conf'), 'utf8')).toBe('');
      expect(await exists(join(applied, 'usr/sbin/policy-rc.d'))).toBe(false);

      // The run step wrote a machine-id, ssh host keys, a log, a .deb and a package index.
      expect((await stat(join(applied, 'etc/machine-id'))).size).toBe(0);
      expect(await readFile(join(applied, 'etc/hostname'), 'utf8')).toBe('localhost\n');
      expect((await readdir(join(applied, 'etc/ssh')).catch(() => [])).filter((n) => n.startsWith('ssh_host_'))).toEqual([]);
      expect((await readdir(join(applied, 'var/lib/apt/lists'))).filter((n) => n.endsWith('_Packages'))).toEqual([]);
      expect((await readdir(join(applied, 'var/cache/apt/archives'))).filter((n) => n.endsWith('.deb'))).toEqual([]);
      expect((await readdir(join(applied, 'var/cache/apt'))).filter((n) => n.endsWith('.bin'))).toEqual([]);
      const log = join(applied, 'var/log/vztpl-test.log');
      expect(!(await exists(log)) || (await stat(log)).size === 0).toBe(true);
      // The netbase install downloaded indexes and a .deb: into the host cache, not the layer.
      expect((await readdir(join(BUILD_CACHE, 'packages/deb/debs'))).some((n) => n.startsWith('netbase_'))).toBe(true);
    });

    it('leaves no work dirs and no mounts behind', async () => {
      expect(await cacheTmpEntries()).toEqual([]);
      expect(await mountsMentioning(BUILD_CACHE, work)).toEqual([]);
    });
  });

  describe('the step cache', () => {
    it('serves an unchanged recipe entirely from the cache, with the same digest', async () => {
      const again = await cliBuild(recipeFile, join(work, 'out2'));
      expect(cachedFlags(again.events)).toEqual([true, true, true, true]);
      expect(again.done.digest).toBe(manifest1);
      expect(stepDones(again.events).map((e) => e.digest)).toEqual(stepDones(events1).map((e) => e.digest));
      expect(again.done.seconds).toBeLessThan(15);
    });

    it('reruns only from the changed step on', async () => {
      // Same recipe text, another copy source: only the copy step's input changed.
      const dir = join(work, 'recipe-changed');
      await writeFiles(dir, { 'recipe.yaml': MAIN_RECIPE, 'files/hello.txt': `changed content ${RUN_ID}\n` });
      const changed = await cliBuild(join(dir, 'recipe.yaml'), join(work, 'out-changed'));
      expect(cachedFlags(changed.events)).toEqual([true, true, true, false]);
      const before = stepDones(events1).map((e) => e.digest);
      const after = stepDones(changed.events).map((e) => e.digest);
      expect(after.slice(0, 3)).toEqual(before.slice(0, 3));
      expect(after[3]).not.toBe(before[3]);
      expect(changed.done.digest).not.toBe(manifest1);

      // A changed run step reruns itself and everything after it.
      const dir2 = join(work, 'recipe-run-changed');
      await writeFiles(dir2, { 'recipe.yaml': recipe([...EDIT_STEP, `      echo ${RUN_ID} > /opt/vztpl-test/c`], COPY_STEP), 'files/hello.txt': 'hello from the recipe\n' });
      const runChanged = await cliBuild(join(dir2, 'recipe.yaml'), join(work, 'out-run-changed'));
      expect(cachedFlags(runChanged.events)).toEqual([true, true, false, false]);
    });

    it('--refresh reruns the bootstrap and package steps; same packages give the same digests', async () => {
      const refreshed = await cliBuild(recipeFile, join(work, 'out-refresh'), ['--refresh']);
      expect(cachedFlags(refreshed.events)).toEqual([false, false, true, true]);
      expect(stepDones(refreshed.events).map((e) => e.digest)).toEqual(stepDones(events1).map((e) => e.digest));
      expect(refreshed.done.digest).toBe(manifest1);
    });
  });

  describe('reproducibility', () => {
    it('--no-cache rebuilds every step into the same image', async () => {
      const out = join(work, 'out-nocache');
      const fresh = await cliBuild(recipeFile, out, ['--no-cache']);
      expect(cachedFlags(fresh.events)).toEqual([false, false, false, false]);
      expect(fresh.done.digest).toBe(manifest1);
      expect((await readFile(join(out, 'index.json'))).equals(await readFile(join(out1, 'index.json')))).toBe(true);
    });

    it('--no-cache uses its fresh results, not stale cache entries (a step with random output)', async () => {
      const dir = join(work, 'recipe-random');
      const random = ['  - name: random', `    run: echo ${RUN_ID} > /etc/vztpl-run && cat /proc/sys/kernel/random/uuid > /etc/vztpl-random`];
      await writeFiles(dir, { 'recipe.yaml': recipe(EDIT_STEP, COPY_STEP, random), 'files/hello.txt': 'hello from the recipe\n' });
      const file = join(dir, 'recipe.yaml');
      const cached = await cliBuild(file, join(work, 'out-random-1'));
      expect(cachedFlags(cached.events)).toEqual([true, true, true, true, false]);
      const fresh = await cliBuild(file, join(work, 'out-random-2'), ['--no-cache']);
      expect(cachedFlags(fresh.events)).toEqual([false, false, false, false, false]);
      const a = stepDones(cached.events).map((e) => e.digest);
      const b = stepDones(fresh.events).map((e) => e.digest);
      // The deterministic steps reproduce bit for bit; the random one must be the new run's.
      expect(b.slice(0, 4)).toEqual(a.slice(0, 4));
      expect(b[4]).not.toBe(a[4]);
      // ...and the fresh result is what the cache serves from now on.
      const after = await cliBuild(file, join(work, 'out-random-3'));
      expect(cachedFlags(after.events)).toEqual([true, true, true, true, true]);
      expect(stepDones(after.events).map((e) => e.digest)).toEqual(b);
    });
  });

  describe('failures', () => {
    it('a failing step: exit code, the step and its output named, nothing left behind', async () => {
      const dir = join(work, 'recipe-fail');
      const failing = ['  - run: |', "      echo 'about to fail'", '      exit 3'];
      await writeFiles(dir, { 'recipe.yaml': recipe(failing) });
      const out = join(work, 'out-fail');
      const { child, result } = spawnCli(['build', join(dir, 'recipe.yaml'), '--cache-dir', BUILD_CACHE, '-o', out]);
      const r = await result;
      expect(r.code).not.toBe(0);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("step 3/3 (run echo 'about to fail') failed");
      expect(r.stderr).toMatch(/exited with code 3\b/);
      expect(r.stderr).toContain('about to fail');
      expect(r.stderr).toContain(join(dir, 'recipe.yaml'));
      expect(r.stderr).not.toContain('internal error');
      expect(await outputLeftovers(out)).toEqual([]);
      expect(await mountsMentioning(BUILD_CACHE, out)).toEqual([]);
      expect((await cacheTmpEntries()).filter((n) => n.startsWith(`${child.pid}-`))).toEqual([]);
      expect(await cacheTmpEntries()).toEqual([]);
    });

    it('a failing step in --json mode ends with an error event', async () => {
      const dir = join(work, 'recipe-fail');
      const out = join(work, 'out-fail-json');
      const r = await runCli(['build', join(dir, 'recipe.yaml'), '--cache-dir', BUILD_CACHE, '-o', out, '--json']);
      expect(r.code).toBe(1);
      const events = parseEvents(r.stdout);
      expect(cachedFlags(events)).toEqual([true, true]);
      expect(events.at(-1)).toMatchObject({ event: 'error', exitCode: 1 });
      expect((events.at(-1) as { message: string }).message).toContain('about to fail');
      expect(await outputLeftovers(out)).toEqual([]);
    });

    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      it(`${signal} during a step: exit 130 promptly, the step's processes killed, nothing left behind`, async () => {
        const dir = join(work, `recipe-${signal}`);
        // A sleep no other process on the machine runs, to find it in /proc.
        const sleep = signal === 'SIGTERM' ? 'sleep 67' : 'sleep 68';
        await writeFiles(dir, { 'recipe.yaml': recipe([`  - run: ${sleep}`]) });
        const out = join(work, `out-${signal}`);
        expect(await processesMatching(sleep)).toEqual([]);
        const cli = spawnCli(['build', join(dir, 'recipe.yaml'), '--cache-dir', BUILD_CACHE, '-o', out, '--json']);
        await waitForEvent(cli.stdout, (e) => e.event === 'step-start' && e.index === 3, 120_000, cli.result);
        await new Promise((r) => setTimeout(r, 1000));
        expect((await processesMatching(sleep)).length).toBeGreaterThan(0);
        const killedAt = performance.now();
        cli.child.kill(signal);
        const r = await cli.result;
        const seconds = (performance.now() - killedAt) / 1000;
        expect(r.code).toBe(130);
        expect(seconds).toBeLessThan(10);
        expect(r.stderr).toContain(`interrupted by ${signal}`);
        const events = parseEvents(r.stdout);
        expect(cachedFlags(events)).toEqual([true, true]);
        expect(events.at(-1)).toMatchObject({ event: 'error', exitCode: 130 });
        expect(await processesMatching(sleep)).toEqual([]);
        expect(await mountsMentioning(BUILD_CACHE, out)).toEqual([]);
        expect(await outputLeftovers(out)).toEqual([]);
        expect(await cacheTmpEntries()).toEqual([]);
      });
    }

    it('a bad recipe: exit 2, file:line and field named, nothing ran', async () => {
      const dir = join(work, 'recipe-bad');
      const bad = ['  - copy:', '      src: files/hello.txt', '      dest: /etc/x', '      mode: "999"'];
      await writeFiles(dir, { 'recipe.yaml': recipe(bad), 'files/hello.txt': 'x\n' });
      const file = join(dir, 'recipe.yaml');
      const cache = join(work, 'cache-bad');
      const out = join(work, 'out-bad');
      const r = await runCli(['build', file, '--cache-dir', cache, '-o', out, '--json']);
      expect(r.code).toBe(2);
      // mode is on line 16 (12 header lines, then the copy step), column 13.
      expect(r.stderr).toContain(`${file}:16:13: steps[1].copy.mode: must be an octal mode`);
      expect(parseEvents(r.stdout).filter((e) => e.event !== 'error')).toEqual([]);
      expect(await exists(cache)).toBe(false);
      expect(await outputLeftovers(out)).toEqual([]);
    });

    it('a missing host tool: exit 3, naming the Debian package, before anything runs', async () => {
      const cache = join(work, 'cache-notool');
      const out = join(work, 'out-notool');
      // process.execPath directly: node need not be on the PATH; mmdebstrap, apt and dpkg are not.
      const r = await runCli(['build', recipeFile, '--cache-dir', cache, '-o', out], { cleanEnv: true, env: { PATH: '/nonexistent', LC_ALL: 'C' } });
      expect(r.code).toBe(3);
      expect(r.stderr).toContain('mmdebstrap is not installed');
      expect(r.stderr).toContain('apt-get install mmdebstrap');
      expect(await exists(cache)).toBe(false);
      expect(await outputLeftovers(out)).toEqual([]);
    });
  });
});
