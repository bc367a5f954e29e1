// End to end: the host cache and its filesystem. A store on a 30 MB tmpfs runs out of space while
// extracting a real template: the pull fails with a clear error and leaves no reference, no partial
// layer and no temporaries (what completed is whole, unreferenced, and pruned away), and the same
// pull succeeds once there is room. On a small loop-mounted XFS, --layout reflink makes a private
// tree that shares its data with the layers (copy-on-write), where --layout copy duplicates it.
// Needs root, mmdebstrap (or a warm build cache), runc, overlayfs; xfsprogs for the reflink part.
import { mkdir, readFile, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { isRoot, tempDir } from '../helpers/build-env.ts';
import {
  BASE_NAME,
  buildTemplates,
  finishHostTests,
  hexOf,
  host,
  layersChecksum,
  layersConsistent,
  mountsUnder,
  pullEvents,
  pushTemplate,
  sh,
  shOk,
  startHostRegistry,
  storeView,
  treeListing,
  type BuiltTemplate,
  type HostRegistry,
} from '../helpers/host-env.ts';

const ready = isRoot && Boolean(findProgram('mmdebstrap')) && Boolean(findProgram('runc') ?? findProgram('crun'));

async function usedBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return (s.blocks - s.bfree) * s.bsize;
}

describe.skipIf(!ready)('vztpl host cache: a full disk, and reflinks on XFS', () => {
  let work: string;
  let reg: HostRegistry;
  let base: BuiltTemplate;

  beforeAll(async () => {
    work = await tempDir('host-disk');
    ({ base } = await buildTemplates(work));
    reg = await startHostRegistry(join(work, 'registry'));
    await pushTemplate(base.dir, reg.host, BASE_NAME, '1.0.0');
  });

  afterAll(() => finishHostTests(work, reg));

  it('disk full during extraction: a clear error, no reference, no partial layer, no temporaries', async () => {
    const fs = join(work, 'tmpfs');
    await mkdir(fs);
    await shOk('mount', ['-t', 'tmpfs', '-o', 'size=30m,mode=0755', 'vztpl-test-full', fs]);
    const root = join(fs, 'store');
    const d = host(root, reg.host);
    const t = JSON.parse((await d.ok('templates', '--json')).stdout) as { templates: unknown[] };
    expect(t.templates).toEqual([]);

    const r = await d.run('pull', BASE_NAME, '--json');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/ENOSPC|no space left on device/);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    expect(r.stderr.trim().split('\n').filter((l) => !l.startsWith('vztpl: warning:'))).toHaveLength(1);
    expect(pullEvents(r).some((e) => e.event === 'pulled')).toBe(false);

    const view = await storeView(root);
    expect(view.refs).toEqual([]);
    expect(view.layerOthers, 'extraction temporaries').toEqual([]);
    expect(view.tmp, 'blob temporaries').toEqual([]);
    expect(view.locks).toEqual([]);
    expect(layersConsistent(view)).toEqual([]);
    // The layer that did not fit is nowhere; neither are the manifest and config (written last).
    const bigIndex = base.layers.reduce((best, l, j) => (l.size > base.layers[best]!.size ? j : best), 0);
    expect(view.layerDirs).not.toContain(hexOf(base.diffIds[bigIndex]!));
    expect(view.blobs).not.toContain(hexOf(base.layers[bigIndex]!.digest));
    expect(view.blobs).not.toContain(hexOf(base.manifestDigest));
    expect(view.blobs).not.toContain(hexOf(base.configDigest));
    // Layers that completed before the disk filled are whole (dir and info) and unreferenced:
    // prune takes them, and the store is as empty as before the pull.
    for (const dir of view.layerDirs) expect(base.diffIds.map(hexOf)).toContain(dir);
    const pruned = JSON.parse((await d.ok('cache', 'prune', '--json')).stdout) as { removedLayers: string[]; removedBlobs?: string[] };
    expect(pruned.removedLayers.map(hexOf).sort()).toEqual(view.layerDirs);
    const empty = await storeView(root);
    expect(empty).toEqual({ refs: [], layerDirs: [], layerInfos: [], layerOthers: [], blobs: [], tmp: [], locks: [], containers: [] });
    expect(await usedBytes(fs)).toBeLessThan(1 << 20);

    // With room, the same store takes the template.
    await shOk('mount', ['-o', 'remount,size=400m', fs]);
    const again = pullEvents(await d.ok('pull', BASE_NAME, '--json'));
    expect(again.find((e) => e.event === 'pulled')).toMatchObject({ digest: base.manifestDigest });
    const full = await storeView(root);
    expect(full.layerDirs).toEqual(base.diffIds.map(hexOf).sort());
    expect(layersConsistent(full)).toEqual([]);
    await d.ok('create', 'f1', '--ostemplate', BASE_NAME);
    expect((await d.ok('exec', 'f1', '--', 'cat', '/opt/vzt-host/base')).stdout).toBe('base\n');
    await d.ok('destroy', 'f1');
    await shOk('umount', [fs]);
  });

  it.skipIf(!findProgram('mkfs.xfs'))('--layout reflink on XFS shares the layers\' data (copy-on-write); --layout copy duplicates it', async () => {
    const img = join(work, 'xfs.img');
    const mnt = join(work, 'xfs');
    await mkdir(mnt);
    await shOk('truncate', ['-s', '600M', img]);
    await shOk('mkfs.xfs', ['-q', '-m', 'reflink=1', img]);
    await shOk('mount', ['-o', 'loop', img, mnt]);
    try {
      const x = host(join(mnt, 'store'), reg.host);
      await x.ok('pull', BASE_NAME);
      const layers = layersChecksum(x.root);
      const templateBytes = (JSON.parse((await x.ok('templates', '--json')).stdout) as { totalBytes: number }).totalBytes;
      expect(templateBytes).toBeGreaterThan(50e6);

      const used0 = await usedBytes(mnt);
      await x.ok('create', 'r1', '--ostemplate', BASE_NAME, '--layout', 'reflink');
      const used1 = await usedBytes(mnt);
      await x.ok('create', 'c1', '--ostemplate', BASE_NAME, '--layout', 'copy');
      const used2 = await usedBytes(mnt);
      const reflinked = used1 - used0;
      const copied = used2 - used1;
      console.log(`host-disk: template ${(templateBytes / 1e6).toFixed(1)} MB; reflink container ${(reflinked / 1e6).toFixed(1)} MB, copy ${(copied / 1e6).toFixed(1)} MB`);
      expect(copied).toBeGreaterThan(templateBytes * 0.5);
      expect(reflinked).toBeLessThan(copied * 0.1);
      // The data of a reflinked file is shared with the layer's.
      const frag = await shOk('filefrag', ['-v', join(mnt, 'store', 'containers', 'r1', 'rootfs', 'usr', 'bin', 'bash')]);
      expect(frag).toMatch(/shared/);

      // Both private trees hold the same files.
      const rootfs = (ct: string) => join(mnt, 'store', 'containers', ct, 'rootfs');
      const personal = new Set(['etc', 'etc/hostname', 'etc/machine-id']);
      const strip = (rows: string[]) => rows.filter((row) => !personal.has(row.split('\t')[0]!));
      expect(strip(treeListing(rootfs('r1')))).toEqual(strip(treeListing(rootfs('c1'))));
      expect(await mountsUnder(rootfs('r1'))).toEqual([]);

      // Writing into a shared file copies it: the layer and the other container keep theirs.
      const bashBefore = await readFile(rootfs('c1') + '/usr/bin/bash');
      const r = await x.ok('exec', 'r1', '--', '/bin/sh', '-c', 'dd if=/dev/zero of=/usr/bin/bash bs=4096 count=1 conv=notrunc 2>/dev/null; echo changed > /etc/debian_version; hostname');
      expect(r.stdout).toBe('ctr1\n');
      expect((await readFile(rootfs('r1') + '/usr/bin/bash')).subarray(0, 4096).every((b) => b === 0)).toBe(true);
      expect((await readFile(rootfs('c1') + '/usr/bin/bash')).equals(bashBefore)).toBe(true);
      expect(layersChecksum(x.root)).toBe(layers);
      expect((await x.ok('exec', 'c1', '--', 'bash', '-c', 'echo $BASH_VERSION')).stdout).toMatch(/^5\./);

      await x.ok('destroy', 'r1');
      await x.ok('destroy', 'c1');
      expect((await storeView(x.root)).containers).toEqual([]);
      expect(await usedBytes(mnt)).toBeLessThan(used0 + (16 << 20));
    } finally {
      await sh('umount', [mnt]);
    }
    // The loop device went with the mount.
    expect((await shOk('losetup', ['-j', img])).trim()).toBe('');
  });
});
