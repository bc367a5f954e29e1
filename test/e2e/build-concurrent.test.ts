// End to end: two `vztpl build`s at the same time on one cache, with the real mmdebstrap against
// deb.debian.org, as in a CI run beside another engineer's builds:
// - a --no-cache build replaces the bootstrap entry that the other build has mounted as its
//   lower dir and will mount again for its next step: that build must keep a whole tree
//   (nothing it uses is deleted while it runs) and both must give the expected layers;
// - two builds whose apt steps run at once on the shared package cache (lists and .debs
//   downloaded by both at the same time) must both succeed, with the same layers as alone.
// The builds wait for each other at a barrier step: its script, in the chroot, polls a TCP port
// of the test (bash's /dev/tcp; steps share the host's network), so the test decides when they
// go on. A private cache dir gives the test control (no other build's session keeps the retired
// trees alive); it is seeded from the shared warm cache (test/helpers/build-env.ts) by hard
// links, so nothing is downloaded or bootstrapped that the shared cache already has.
// Needs root, mmdebstrap and network access to the Debian mirror.
import { createServer, type Server } from 'node:net';
import { chmod, link, lstat, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, type BuildResult } from '../../builder/build.ts';
import { findProgram } from '../../common/run.ts';
import {
  BUILD_CACHE,
  cacheTmpEntries,
  execOk,
  isRoot,
  mountsMentioning,
  parseEvents,
  spawnCli,
  stepDones,
  tempDir,
  waitForEvent,
  writeFiles,
  type CliResult,
  type Event,
} from '../helpers/build-env.ts';
import { listTree } from '../helpers/tree-listing.ts';

/** The barrier's port: fixed, because it is part of the recipes (and so of the step keys). */
const PORT = 47631;

const recipe = (name: string, tag: string, extra: string[] = []) =>
  [
    `name: debian-12-x86_64-concurrent-${name}`,
    'version: 1.0.0',
    'bootstrap:',
    '  tool: mmdebstrap',
    '  suite: bookworm',
    '  mirror: http://deb.debian.org/debian',
    '  variant: minbase',
    'steps:',
    `  - name: barrier ${tag}`,
    '    shell: /bin/bash',
    '    run: |',
    '      set -e',
    "      count() { find / -xdev | wc -l; }",
    '      before=$(count)',
    `      echo "barrier ${tag}: waiting, $before files"`,
    `      until (exec 3<>/dev/tcp/127.0.0.1/${PORT}) 2>/dev/null; do sleep 0.2; done`,
    '      after=$(count)',
    '      # What a deleted lower dir took away in the bug: the tools of the base system.',
    '      stat / > /dev/null && update-alternatives --version > /dev/null && test -f /usr/share/debconf/confmodule',
    `      echo "barrier ${tag}: released, $after files"`,
    '      test "$before" = "$after"',
    ...extra.map((l) => `      ${l}`),
    '  - install: [netbase]',
    '',
  ].join('\n');

/** A: nothing but the barrier and netbase. B, C, D: their barrier writes a file, so their install step is their own. */
const RECIPES = {
  a: recipe('a', 'A'),
  b: recipe('b', 'B', ['echo b > /etc/vztpl-concurrent']),
  c: recipe('c', 'C', ['echo c > /etc/vztpl-concurrent']),
  d: recipe('d', 'D', ['echo d > /etc/vztpl-concurrent']),
};

const exists = (p: string) => lstat(p).then(
  () => true,
  () => false,
);

/** The TCP port the barrier steps poll: open lets them go on. */
class Gate {
  private server: Server | undefined;
  async open(): Promise<void> {
    if (this.server) return;
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(PORT, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

interface Running {
  name: string;
  stdout: () => string;
  result: Promise<CliResult>;
}

function startBuild(name: keyof typeof RECIPES, dir: string, cache: string, extra: string[] = []): Running {
  const run = spawnCli(['build', join(dir, `${name}.yaml`), '--cache-dir', cache, '-o', join(dir, `out-${name}-${extra.join('')}`), '--json', ...extra]);
  return { name, stdout: run.stdout, result: run.result };
}

async function finished(run: Running): Promise<Event[]> {
  const result = await run.result;
  if (result.code !== 0) throw new Error(`build ${run.name} exited with ${result.code}:\n${result.stderr}\n${result.stdout.slice(-4000)}`);
  return parseEvents(result.stdout);
}

const waiting = (tag: string) => (e: Event) => e.event === 'step-log' && e.line.startsWith(`barrier ${tag}: waiting`);
const stepLog = (events: Event[], index: number) => events.flatMap((e) => (e.event === 'step-log' && e.index === index ? [e.line] : []));
const layerDigests = (events: Event[]) => stepDones(events).map((e) => e.digest);

/** The lower dirs of the overlay a build in this cache has mounted now (in its namespace). */
async function mountedLowers(cache: string): Promise<string[][]> {
  const lines = await mountsMentioning(`${cache}/`);
  return lines.flatMap((l) => {
    const m = /lowerdir=([^,\s]+)/.exec(l);
    return m ? [m[1]!.split(':')] : [];
  });
}

/** Hard links of a directory tree (cp -al): the copy shares the files, not the names. */
async function linkTree(from: string, to: string): Promise<void> {
  await mkdir(join(to, '..'), { recursive: true });
  await execOk('cp', ['-al', from, to]);
}

/** The tree dir an entry's step.json names (step-cache.ts). */
async function treeDirOf(cache: string, key: string): Promise<string> {
  const meta = JSON.parse(await readFile(join(cache, 'steps', key, 'step.json'), 'utf8')) as { treeDir?: string };
  return meta.treeDir ?? 'tree';
}

/** A step-cache entry, hard-linked into another cache: its step.json and the tree it names. */
async function linkEntry(from: string, to: string, key: string): Promise<void> {
  await mkdir(join(to, 'steps', key), { recursive: true });
  await link(join(from, 'steps', key, 'step.json'), join(to, 'steps', key, 'step.json'));
  const treeDir = await treeDirOf(from, key);
  await linkTree(join(from, 'steps', key, treeDir), join(to, 'steps', key, treeDir));
}

describe.skipIf(!isRoot || !findProgram('mmdebstrap'))('vztpl build: concurrent builds on one cache', () => {
  const gate = new Gate();
  let work: string;
  let cache: string;
  /** A built alone (in the shared cache): the layers every build here must give. */
  let alone: BuildResult;
  let aloneDigests: (string | undefined)[];
  let bootstrapKey: string;
  let epoch: number;

  beforeAll(async () => {
    work = await tempDir('build-concurrent');
    // World-readable like the shared cache's path: mmdebstrap runs apt unsandboxed (and the
    // partial/ dirs of the bootstrap then belong to root, not _apt) when _apt cannot read the root.
    await chmod(work, 0o755);
    await writeFiles(work, Object.fromEntries(Object.entries(RECIPES).map(([n, text]) => [`${n}.yaml`, text])));
    await gate.open();
    // Alone, in the shared warm cache: cached from the second run on.
    alone = await build({ recipe: join(work, 'a.yaml'), cacheDir: BUILD_CACHE, out: join(work, 'out-alone') });
    aloneDigests = alone.layers.map((l) => l.blobs.zstd?.digest);
    bootstrapKey = alone.layers[0]!.key;
    epoch = Date.parse(alone.config.created ?? '') / 1000;

    // The private cache: A's entries and blobs, the bookworm lists and the .debs but netbase's.
    cache = join(work, 'cache');
    for (const layer of alone.layers) await linkEntry(BUILD_CACHE, cache, layer.key);
    await mkdir(join(cache, 'blobs/sha256'), { recursive: true });
    for (const d of aloneDigests) if (d) await link(join(BUILD_CACHE, 'blobs/sha256', d.slice(7)), join(cache, 'blobs/sha256', d.slice(7)));
    await linkTree(join(BUILD_CACHE, 'apt-lists'), join(cache, 'apt-lists'));
    const debs = join(cache, 'packages/deb/debs');
    await mkdir(debs, { recursive: true });
    for (const name of await readdir(join(BUILD_CACHE, 'packages/deb/debs'))) {
      if (name.endsWith('.deb') && !name.startsWith('netbase_')) await link(join(BUILD_CACHE, 'packages/deb/debs', name), join(debs, name));
    }
  });

  afterAll(async () => {
    await gate.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('a --no-cache build replaces the entries another build is using: that build keeps whole trees, both give the expected layers', async () => {
    await gate.close();
    const b = startBuild('b', work, cache);
    await waitForEvent(b.stdout, waiting('B'), 120_000, b.result);
    // B runs its barrier step on the cached bootstrap tree.
    const [bLowers] = await mountedLowers(cache);
    const oldTreeDir = await treeDirOf(cache, bootstrapKey);
    const oldTree = bLowers!.at(-1)!;
    expect(oldTree).toBe(join(cache, 'steps', bootstrapKey, oldTreeDir));
    const oldListing = listTree(oldTree, epoch);

    // A --no-cache bootstraps again and replaces the bootstrap entry while B runs.
    const a = startBuild('a', work, cache, ['--no-cache']);
    await waitForEvent(a.stdout, waiting('A'), 480_000, a.result);
    // What the cache and the mounts look like now, asserted once both builds are done (the
    // builds' own results come first: they are what the bug broke).
    const oldTreeWhole = (await exists(oldTree)) && JSON.stringify(listTree(oldTree, epoch)) === JSON.stringify(oldListing);
    const newTreeDir = await treeDirOf(cache, bootstrapKey);
    const newTree = join(cache, 'steps', bootstrapKey, newTreeDir);
    const retiredNow = await readdir(join(cache, 'retired')).catch(() => [] as string[]);
    const newListing = listTree(newTree, epoch);
    const mountedNow = (await mountedLowers(cache)).map((l) => l.at(-1)).sort();

    // Both go on: B's next step mounts the tree it looked up (the retired one), A's the new one.
    await gate.open();
    const [aEvents, bEvents] = await Promise.all([finished(a), finished(b)]);
    // B's chroot saw the same files after A's replacement as before it (its step checks that too).
    const counts = stepLog(bEvents, 2).flatMap((l) => /^barrier B: (waiting|released), (\d+) files$/.exec(l)?.slice(1) ?? []);
    expect(counts).toEqual(['waiting', counts[1], 'released', counts[1]]);

    // While both ran: B's lower dir stayed where it was, whole; A's fresh bootstrap went into the
    // entry under a new name (the same tree: the bootstrap is reproducible), the old one retired.
    expect(oldTreeWhole).toBe(true);
    expect(newTreeDir).toMatch(/^tree\.[0-9a-f]+$/);
    expect(newTreeDir).not.toBe(oldTreeDir);
    expect(retiredNow).toContain(`${bootstrapKey}~${oldTreeDir}`);
    expect(newListing).toEqual(oldListing);
    expect(mountedNow).toEqual([newTree, oldTree].sort());

    // A --no-cache gives the layers A gave alone; B shares A's bootstrap and install layers.
    expect(stepDones(aEvents).map((e) => e.cached)).toEqual([false, false, false]);
    expect(layerDigests(aEvents)).toEqual(aloneDigests);
    expect(stepDones(bEvents).map((e) => e.cached)).toEqual([true, false, false]);
    const bDigests = layerDigests(bEvents);
    expect([bDigests[0], bDigests[2]]).toEqual([aloneDigests[0], aloneDigests[2]]);
    expect(bDigests[1]).toMatch(/^sha256:/);

    // The last build to finish deleted the retired tree; nothing else is left behind.
    expect(await exists(oldTree)).toBe(false);
    expect((await readdir(join(cache, 'steps', bootstrapKey))).sort()).toEqual([newTreeDir, 'step.json'].sort());
    expect(await readdir(join(cache, 'retired'))).toEqual([]);
    expect(await cacheTmpEntries(cache)).toEqual([]);
    expect(await mountsMentioning(`${cache}/`)).toEqual([]);
  });

  it("two builds' apt steps at once on the shared package cache: both download, neither fails on apt's locks, the same layers as alone", async () => {
    // Cold lists and no netbase .deb: both apt-get update and download at the same time.
    await rm(join(cache, 'apt-lists'), { recursive: true, force: true });
    const debs = join(cache, 'packages/deb/debs');
    for (const name of await readdir(debs)) if (name.startsWith('netbase_')) await rm(join(debs, name));
    await gate.close();
    const c = startBuild('c', work, cache);
    const d = startBuild('d', work, cache);
    await Promise.all([waitForEvent(c.stdout, waiting('C'), 120_000, c.result), waitForEvent(d.stdout, waiting('D'), 120_000, d.result)]);
    await gate.open();
    const [cEvents, dEvents] = await Promise.all([finished(c), finished(d)]);

    // Their install steps ran at the same time.
    const span = (events: Event[]) => {
      const start = events.find((e) => e.event === 'step-start' && e.index === 3)!;
      const done = stepDones(events).find((e) => e.index === 3)!;
      return [Date.parse(start.time), Date.parse(done.time)] as const;
    };
    const [c0, c1] = span(cEvents);
    const [d0, d1] = span(dEvents);
    expect(Math.max(c0, d0)).toBeLessThan(Math.min(c1, d1));
    for (const events of [cEvents, dEvents]) {
      expect(stepDones(events).map((e) => e.cached)).toEqual([true, false, false]);
      // The same bootstrap and install layers as A alone: the private copies change nothing.
      const digests = layerDigests(events);
      expect([digests[0], digests[2]]).toEqual([aloneDigests[0], aloneDigests[2]]);
      expect(stepLog(events, 3).join('\n')).not.toMatch(/Could not get lock/);
    }

    // What they downloaded is in the shared cache, whole; nothing private is left.
    const netbase = (await readdir(debs)).filter((n) => n.startsWith('netbase_'));
    expect(netbase).toHaveLength(1);
    await execOk('dpkg-deb', ['--info', join(debs, netbase[0]!)]);
    const lists = await readdir(join(cache, 'apt-lists'));
    expect(lists).toHaveLength(1);
    const listFiles = (await readdir(join(cache, 'apt-lists', lists[0]!))).sort();
    expect(listFiles).toEqual(expect.arrayContaining(['deb.debian.org_debian_dists_bookworm_InRelease', 'deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages']));
    expect(listFiles.filter((n) => n.startsWith('.') || n.endsWith('.tmp'))).toEqual([]);
    expect(await cacheTmpEntries(cache)).toEqual([]);
  });
});
