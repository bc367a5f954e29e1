// End to end: the shipped Debian recipes build with `vztpl build` (real mmdebstrap against
// deb.debian.org), the web flavor shares the base template's layers, and nginx runs in the
// applied flavor. Uses the shared build cache, so the bookworm bootstrap layer is the one the
// other build tests made. Needs root, mmdebstrap, skopeo and network access.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../builder/build.ts';
import { findProgram } from '../../common/run.ts';
import { OciLayout } from '../../format/layout.ts';
import { BUILD_CACHE, REPO_ROOT, cacheTmpEntries, cliBuild, exec, execOk, isRoot, mountsMentioning, stepDones, tempDir, type BuildDone, type Event } from '../helpers/build-env.ts';
import { applyLayout } from '../helpers/oci-apply.ts';
import { listOverlay, listTree } from '../helpers/tree-listing.ts';

const recipe = (name: string) => join(REPO_ROOT, 'recipes', `${name}.yaml`);

interface Built {
  out: string;
  events: Event[];
  done: BuildDone;
}

describe.skipIf(!isRoot || !findProgram('mmdebstrap') || !findProgram('skopeo'))('the shipped Debian recipes', () => {
  let work: string;
  const built = new Map<string, Built>();

  async function buildShipped(name: string): Promise<Built> {
    const out = join(work, name);
    const t0 = performance.now();
    const { events, done } = await cliBuild(recipe(name), out);
    const cached = stepDones(events).map((e) => (e.cached ? 'cached' : `${e.seconds.toFixed(1)}s`));
    console.log(`${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s (${cached.join(', ')})`);
    const result = { out, events, done };
    built.set(name, result);
    return result;
  }

  /** skopeo reads the layout; its layers are the manifest's. */
  async function checkLayout(b: Built, steps: number): Promise<string[]> {
    const info = JSON.parse(await execOk('skopeo', ['inspect', `oci:${b.out}`])) as { Digest: string; Layers: string[]; Labels: Record<string, string> };
    const { manifest, descriptor } = await new OciLayout(b.out).resolve();
    expect(descriptor.digest).toBe(b.done.digest);
    expect(info.Layers).toEqual(manifest.layers.map((l) => l.digest));
    expect(stepDones(b.events)).toHaveLength(steps);
    expect(info.Layers).toHaveLength(stepDones(b.events).filter((e) => !e.emptyLayer).length);
    return info.Layers;
  }

  beforeAll(async () => {
    work = await tempDir('shipped');
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('debian-12-x86_64 builds into a valid layout with its package lock', async () => {
    const b = await buildShipped('debian-12-x86_64');
    await checkLayout(b, 4);
    const { config } = await new OciLayout(b.out).resolve();
    expect(config.config?.Labels).toMatchObject({ 'org.openvz.template.distro': 'debian', 'org.openvz.template.release': '12', 'org.openvz.template.arch': 'x86_64' });
    expect(config.config?.Labels).not.toHaveProperty('org.openvz.template.flavor');
    expect(config.config?.Cmd).toEqual(['/bin/bash']);
    const names = config['org.openvz.template']!.packages.map((p) => p.name);
    for (const p of ['systemd-sysv', 'ifupdown', 'iproute2', 'netbase', 'ca-certificates', 'procps', 'less']) expect(names).toContain(p);
  });

  it('debian-12-x86_64-web starts with exactly the base template layers, adds its own, and locks nginx', async () => {
    const base = built.get('debian-12-x86_64') ?? (await buildShipped('debian-12-x86_64'));
    const web = await buildShipped('debian-12-x86_64-web');
    const baseLayers = await checkLayout(base, 4);
    const webLayers = await checkLayout(web, 6);
    expect(webLayers.slice(0, baseLayers.length)).toEqual(baseLayers);
    expect(webLayers).toHaveLength(baseLayers.length + 2);
    expect(new Set(webLayers).size).toBe(webLayers.length);
    // The base's steps were cache hits: the flavor reuses the base build's layers.
    expect(stepDones(web.events).slice(0, 4).every((e) => e.cached)).toBe(true);

    const { config } = await new OciLayout(web.out).resolve();
    expect(config.config?.Labels).toMatchObject({ 'org.openvz.template.flavor': 'web', 'org.opencontainers.image.title': 'debian-12-x86_64-web' });
    expect(config.config?.Cmd).toEqual(['nginx', '-g', 'daemon off;']);
    expect(config.history?.map((h) => h.comment)).toEqual(['bootstrap mmdebstrap bookworm (minbase)', 'init and networking', 'base tools', 'container defaults', 'nginx', 'welcome page']);
    const lock = config['org.openvz.template']!.packages;
    expect(lock.find((p) => p.name === 'nginx')?.version).toMatch(/^1\.22\./);

    // nginx runs in the applied template; the copied page is there.
    const root = join(work, 'web-applied');
    await applyLayout(web.out, root);
    const v = await exec('chroot', [root, 'nginx', '-v']);
    expect(v.code).toBe(0);
    expect(v.stderr).toMatch(/nginx version: nginx\/1\.22/);
    const page = await readFile(join(REPO_ROOT, 'recipes/files/index.html'));
    expect((await readFile(join(root, 'var/www/html/index.html'))).equals(page)).toBe(true);

    // The applied layers are the build's own tree, extended attributes included (systemd puts
    // POSIX ACLs on /var/log/journal).
    const result = await build({ recipe: recipe('debian-12-x86_64-web'), cacheDir: BUILD_CACHE, out: join(work, 'web-inprocess') });
    expect(result.manifestDigest).toBe(web.done.digest);
    const epoch = Date.parse(result.config.created ?? '') / 1000;
    const view = join(work, 'web-view');
    await mkdir(view);
    const trees = result.layers.filter((l) => !l.emptyLayer).map((l) => l.tree).reverse();
    const mine = listTree(root, epoch);
    expect(mine).toEqual(await listOverlay(trees, view, epoch));
    expect(mine.find((l) => l.startsWith('var/log/journal\t'))).toMatch(/xattrs .*system\.posix_acl_access=0x/);
  });

  it('debian-11-x86_64 (bullseye) builds into a valid layout', async () => {
    const b = await buildShipped('debian-11-x86_64');
    await checkLayout(b, 4);
    const { config } = await new OciLayout(b.out).resolve();
    expect(config.config?.Labels).toMatchObject({ 'org.openvz.template.release': '11' });
    const root = join(work, 'bullseye-applied');
    await applyLayout(b.out, root);
    expect(await execOk('chroot', [root, '/bin/sh', '-c', 'cat /etc/os-release'])).toContain('VERSION_CODENAME=bullseye');
    const lock = config['org.openvz.template']!.packages;
    expect(lock.find((p) => p.name === 'base-files')?.version).toMatch(/^11\./);
  });

  it('left no work dirs and no mounts behind', async () => {
    expect(await cacheTmpEntries()).toEqual([]);
    expect(await mountsMentioning(BUILD_CACHE, work)).toEqual([]);
  });
});
