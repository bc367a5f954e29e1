// End to end: the RPM-family path through `vztpl build`: the host's dnf bootstraps from the local
// fixture repository (test/fixtures/rpm-repo.ts), then install, run and remove steps on
// overlayfs; the template's own rpm must see the result. Needs root, dnf, rpm, rpmbuild,
// createrepo_c and busybox-static (scripts/setup.sh).
import { lstat, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../builder/build.ts';
import { findProgram } from '../../common/run.ts';
import { OciLayout } from '../../format/layout.ts';
import { FIXTURE_EPOCH, HELLO_POST_FILE, buildRpmRepo } from '../fixtures/rpm-repo.ts';
import { BUILD_CACHE, TEST_ROOT, cacheTmpEntries, cliBuild, execOk, isRoot, mountsMentioning, stepDones, tempDir, writeFiles, type Event } from '../helpers/build-env.ts';
import { applyLayout, type ApplyStats } from '../helpers/oci-apply.ts';
import { listOverlay, listTree } from '../helpers/tree-listing.ts';

const exists = (p: string) => lstat(p).then(
  () => true,
  () => false,
);

const ARCH: Record<string, string> = {
  'fixture-filesystem': 'noarch',
  'fixture-shell': 'x86_64',
  'fixture-rpm': 'x86_64',
  'fixture-hello': 'noarch',
};

function recipeText(baseurl: string): string {
  return `${[
    'name: fixture-9-x86_64',
    'version: 1.0.0',
    'description: the fixture distribution, built with dnf',
    'bootstrap:',
    '  tool: dnf',
    '  releasever: "9"',
    '  repos:',
    '    - name: fixture',
    `      baseurl: ${baseurl}`,
    '      gpgcheck: false',
    '  packages: [fixture-filesystem, fixture-shell, fixture-rpm]',
    'steps:',
    '  - install: [fixture-hello, fixture-extra]',
    '  - run: echo built > /etc/built-by-vztpl',
    '  - remove: [fixture-extra]',
  ].join('\n')}\n`;
}

const TITLES = ['bootstrap dnf releasever 9', 'install fixture-hello fixture-extra', 'run echo built > /etc/built-by-vztpl', 'remove fixture-extra'];

describe.skipIf(!isRoot || !findProgram('dnf') || !findProgram('rpmbuild') || !findProgram('createrepo_c'))('vztpl build: an RPM-family template with dnf', () => {
  let work: string;
  let recipeFile: string;
  let out: string;
  let events: Event[];
  let manifestDigest: string;
  let applied: string;
  let applyStats: ApplyStats[];

  beforeAll(async () => {
    work = await tempDir('build-rpm');
    // The same repository as test/e2e/dnf.test.ts uses for its second repository: built once.
    const repo = await buildRpmRepo(join(TEST_ROOT, 'rpm-repo-extra'), { extraPackages: ['fixture-extra'] });
    expect(repo.packages).toContain('fixture-extra');
    recipeFile = join(work, 'recipe', 'fixture-9-x86_64.yaml');
    await writeFiles(join(work, 'recipe'), { 'fixture-9-x86_64.yaml': recipeText(repo.baseurl) });
    out = join(work, 'out');
    const first = await cliBuild(recipeFile, out);
    events = first.events;
    manifestDigest = first.done.digest;
    applied = join(work, 'applied');
    applyStats = (await applyLayout(out, applied)).layers;
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('writes an OCI layout with one layer per step', async () => {
    expect(stepDones(events).map((e) => e.title)).toEqual(TITLES);
    expect(stepDones(events).every((e) => !e.emptyLayer)).toBe(true);
    expect(JSON.parse(await readFile(join(out, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    const { manifest, descriptor } = await new OciLayout(out).resolve();
    expect(descriptor.digest).toBe(manifestDigest);
    expect(manifest.layers).toHaveLength(4);
    if (findProgram('skopeo')) {
      const info = JSON.parse(await execOk('skopeo', ['inspect', `oci:${out}`])) as { Layers: string[] };
      expect(info.Layers).toEqual(manifest.layers.map((l) => l.digest));
    }
    // The remove step deleted the package's directory: a whiteout in the last layer.
    expect(applyStats[3]!.whiteouts).toContain('usr/share/fixture-extra');
  });

  it("the template's own rpm lists what the steps installed and removed; %post ran; the run step's file is there", async () => {
    const qa = await execOk('chroot', [applied, '/bin/sh', '-c', 'rpm -qa']);
    const expected = Object.keys(ARCH).map((n) => `${n}-1.0-1.${ARCH[n]}`).sort();
    expect(qa.trim().split('\n').sort()).toEqual(expected);
    expect(await readFile(join(applied, HELLO_POST_FILE), 'utf8')).toBe('post ran: 1\n');
    expect(await readFile(join(applied, 'etc/built-by-vztpl'), 'utf8')).toBe('built\n');
    expect((await execOk('chroot', [applied, '/bin/sh', '-c', 'hello'])).trim()).toBe('hello from fixture');
    expect(await exists(join(applied, 'usr/share/fixture-extra'))).toBe(false);
    expect(await exists(join(applied, 'usr/share/fixture-hello/README'))).toBe(true);
  });

  it('the config carries the package lock (with versions), labels and history', async () => {
    const { config } = await new OciLayout(out).resolve();
    const meta = config['org.openvz.template']!;
    expect(meta).toMatchObject({ name: 'fixture-9-x86_64', distro: 'fixture', release: '9', arch: 'x86_64', family: 'rpm' });
    expect(meta.packages).toEqual(Object.keys(ARCH).sort().map((name) => ({ name, version: '1.0-1', arch: ARCH[name] })));
    const qf = await execOk('chroot', [applied, 'rpm', '-qa', '--qf', '%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n']);
    const fromRpm = qf.trim().split('\n').map((l) => {
      const [name, version, arch] = l.split('\t');
      return { name, version, arch };
    });
    expect(meta.packages).toEqual(fromRpm.sort((a, b) => (a.name! < b.name! ? -1 : 1)));
    expect(config.history?.map((h) => h.comment)).toEqual(TITLES);
    expect(config.created).toBe(new Date(FIXTURE_EPOCH * 1000).toISOString());
    expect(config.config?.Labels).toMatchObject({ 'org.openvz.template.distro': 'fixture', 'org.openvz.template.release': '9' });
  });

  it("applied in order, the layers give the build's own tree", async () => {
    const result = await build({ recipe: recipeFile, cacheDir: BUILD_CACHE, out: join(work, 'out-inprocess') });
    expect(result.manifestDigest).toBe(manifestDigest);
    const mountpoint = join(work, 'view');
    await mkdir(mountpoint);
    const trees = result.layers.filter((l) => !l.emptyLayer).map((l) => l.tree).reverse();
    expect(listTree(applied, FIXTURE_EPOCH)).toEqual(await listOverlay(trees, mountpoint, FIXTURE_EPOCH));
  });

  it('a rebuild is all cache hits with the same digest, and leaves nothing behind', async () => {
    const again = await cliBuild(recipeFile, join(work, 'out2'));
    expect(stepDones(again.events).map((e) => e.cached)).toEqual([true, true, true, true]);
    expect(again.done.digest).toBe(manifestDigest);
    expect(await cacheTmpEntries()).toEqual([]);
    expect(await mountsMentioning(BUILD_CACHE, work)).toEqual([]);
  });
});
