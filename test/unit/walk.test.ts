// walkLayer (format/tar/walk.ts) on hand-made trees: a root filesystem and an overlayfs upper
// dir with its whiteouts (char 0/0 devices) and opaque directories (trusted.overlay.opaque=y),
// made with mknod and setfattr as overlayfs makes them; packLayer's determinism; and cleanTree
// (builder/cleanup.ts). Device nodes and trusted.* xattrs need root. The streaming walk
// (layerEntries) packs to the same bytes as the whole list, pinned to the digests the packer
// gave before it streamed (the step cache's keys and stored layers depend on them).
import { execFileSync } from 'node:child_process';
import { chmod, link, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanTree, cleanupRules } from '../../builder/cleanup.ts';
import { cleanupSchema } from '../../builder/recipe/schema.ts';
import { packLayer } from '../../format/tar/pack.ts';
import { OPAQUE_WHITEOUT } from '../../format/oci.ts';
import { layerEntries, nonEmptyLayerEntries, walkLayer, type LayerEntry } from '../../format/tar/walk.ts';

const EPOCH = 1_700_000_000;
const root = process.getuid?.() === 0;

let dir: string;
let seq = 0;
beforeAll(async () => {
  // Not a tmpfs: trusted.* xattrs and device nodes need a real filesystem (ext4 here).
  dir = await mkdtemp(join('/var/tmp', 'vztpl-walk-test-')).catch(() => mkdtemp(join(tmpdir(), 'vztpl-walk-test-')));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const fresh = async (name: string) => {
  const d = join(dir, `${++seq}-${name}`);
  await mkdir(d, { recursive: true });
  return d;
};

async function put(rootDir: string, rel: string, content: string | Buffer = '', mode = 0o644): Promise<void> {
  await mkdir(dirname(join(rootDir, rel)), { recursive: true });
  await writeFile(join(rootDir, rel), content);
  await chmod(join(rootDir, rel), mode);
}
const mknod = (path: string, type: 'c' | 'b', major: number, minor: number) => execFileSync('mknod', [path, type, String(major), String(minor)]);
const setfattr = (path: string, name: string, value: string) => execFileSync('setfattr', ['-h', '-n', name, '-v', value, path]);
const exists = (p: string) => lstat(p).then(
  () => true,
  () => false,
);

/** Sets every mtime in the tree (children first) to `seconds`. */
async function touchAll(rootDir: string, seconds: number): Promise<void> {
  const visit = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await visit(p);
      if (!e.isSymbolicLink()) await utimes(p, seconds, seconds);
    }
  };
  await visit(rootDir);
}

const summary = (entries: LayerEntry[]) => entries.map((e) => `${e.type} ${e.path}${e.linkname ? ` -> ${e.linkname}` : ''}`);

describe.skipIf(!root)('walkLayer', () => {
  /** A lower layer and an upper dir on top of it, as a step leaves them. */
  let lower: string;
  let upper: string;

  beforeAll(async () => {
    lower = await fresh('lower');
    await put(lower, 'etc/issue.net', 'Debian\n');
    await put(lower, 'etc/apt/apt.conf.d/70debconf', 'x');
    await put(lower, 'etc/apt/apt.conf.d/docker-clean', 'y');
    await put(lower, 'etc/motd', 'hi');

    upper = await fresh('upper');
    await mkdir(join(upper, 'etc/apt/apt.conf.d'), { recursive: true });
    // rm /etc/issue.net: a char 0/0 whiteout.
    mknod(join(upper, 'etc/issue.net'), 'c', 0, 0);
    // rm -rf /etc/apt/apt.conf.d && mkdir: an opaque dir replacing the lower one.
    setfattr(join(upper, 'etc/apt/apt.conf.d'), 'trusted.overlay.opaque', 'y');
    await put(upper, 'etc/apt/apt.conf.d/99test', 'x\n');
    // mkdir /opt/new: overlayfs marks new dirs opaque too, but they hide nothing.
    await mkdir(join(upper, 'opt/new'), { recursive: true });
    setfattr(join(upper, 'opt/new'), 'trusted.overlay.opaque', 'y');
    await put(upper, 'opt/new/file', 'new');
    // Names in an order where UTF-16 and byte order, and case, matter.
    for (const name of ['b', 'B', 'a', '_', 'é', 'z', 'Z1']) await put(upper, `opt/sorted/${name}`, name);
    // A real device node, a fifo, links, a setuid file, an xattr.
    mknod(join(upper, 'opt/null'), 'c', 1, 3);
    mknod(join(upper, 'opt/disk'), 'b', 8, 17);
    mknod(join(upper, 'opt/wide'), 'c', 4, 300);
    execFileSync('mkfifo', [join(upper, 'opt/fifo')]);
    await symlink('/etc/os-release', join(upper, 'opt/link'));
    await put(upper, 'opt/hard-1', 'linked');
    await link(join(upper, 'opt/hard-1'), join(upper, 'opt/hard-2'));
    await put(upper, 'opt/suid', '#!/bin/sh\n', 0o4755);
    setfattr(join(upper, 'opt/suid'), 'user.vztpl', 'kept');
    setfattr(join(upper, 'opt/suid'), 'trusted.overlay.origin', 'dropped');
    await touchAll(upper, EPOCH + 1000); // all newer than the epoch
    await put(upper, 'opt/old', 'old');
    await utimes(join(upper, 'opt/old'), EPOCH - 5000, EPOCH - 5000);
  });

  it('converts whiteouts and opaque dirs, in sorted order, with mtimes clamped to the epoch', async () => {
    const entries = await walkLayer(upper, { kind: 'upper', epoch: EPOCH, lowers: [lower] });
    expect(summary(entries)).toEqual([
      'dir etc',
      'dir etc/apt',
      'dir etc/apt/apt.conf.d',
      `file etc/apt/apt.conf.d/${OPAQUE_WHITEOUT}`,
      'file etc/apt/apt.conf.d/99test',
      'file etc/.wh.issue.net',
      'dir opt',
      'block opt/disk',
      'fifo opt/fifo',
      'file opt/hard-1',
      'link opt/hard-2 -> opt/hard-1',
      'symlink opt/link -> /etc/os-release',
      'dir opt/new',
      'file opt/new/file',
      'char opt/null',
      'file opt/old',
      'dir opt/sorted',
      'file opt/sorted/B',
      'file opt/sorted/Z1',
      'file opt/sorted/_',
      'file opt/sorted/a',
      'file opt/sorted/b',
      'file opt/sorted/z',
      'file opt/sorted/é',
      'file opt/suid',
      'char opt/wide',
    ]);
    const by = (p: string) => entries.find((e) => e.path === p)!;
    expect(OPAQUE_WHITEOUT).toBe('.wh..wh..opq');
    expect(by('etc/.wh.issue.net')).toMatchObject({ type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0 });
    expect(by('etc/.wh.issue.net').source).toBeUndefined();
    // Everything touched after the epoch is clamped to it; older stays.
    for (const e of entries) expect(e.mtime).toBe(e.path === 'opt/old' ? EPOCH - 5000 : EPOCH);
    expect(by('opt/null')).toMatchObject({ devmajor: 1, devminor: 3, mode: expect.any(Number) });
    expect(by('opt/disk')).toMatchObject({ devmajor: 8, devminor: 17 });
    expect(by('opt/wide')).toMatchObject({ devmajor: 4, devminor: 300 });
    expect(by('opt/hard-1')).toMatchObject({ size: 6, source: join(upper, 'opt/hard-1') });
    expect(by('opt/hard-2')).toMatchObject({ size: 0 });
    expect(by('opt/suid').mode).toBe(0o4755);
    expect([...(by('opt/suid').xattrs ?? new Map()).keys()]).toEqual(['user.vztpl']);
    expect(by('opt/suid').xattrs?.get('user.vztpl')?.toString()).toBe('kept');
    // The opaque xattr itself is never content.
    expect(by('etc/apt/apt.conf.d').xattrs).toBeUndefined();
  });

  it('writes an opaque marker only for a directory some lower layer has; without lowers, for every opaque dir', async () => {
    const withLowers = await walkLayer(upper, { kind: 'upper', epoch: EPOCH, lowers: [lower] });
    expect(withLowers.filter((e) => e.path.endsWith(OPAQUE_WHITEOUT)).map((e) => e.path)).toEqual([`etc/apt/apt.conf.d/${OPAQUE_WHITEOUT}`]);
    const noLowers = await walkLayer(upper, { kind: 'upper', epoch: EPOCH });
    expect(noLowers.filter((e) => e.path.endsWith(OPAQUE_WHITEOUT)).map((e) => e.path)).toEqual([`etc/apt/apt.conf.d/${OPAQUE_WHITEOUT}`, `opt/new/${OPAQUE_WHITEOUT}`]);
  });

  it('in a root filesystem a char 0/0 device is a device, not a whiteout, and opaque xattrs mean nothing', async () => {
    const rootfs = await fresh('rootfs');
    mknod(join(rootfs, 'zero-zero'), 'c', 0, 0);
    await mkdir(join(rootfs, 'd'));
    setfattr(join(rootfs, 'd'), 'trusted.overlay.opaque', 'y');
    const entries = await walkLayer(rootfs, { kind: 'rootfs', epoch: EPOCH });
    expect(summary(entries)).toEqual(['dir d', 'char zero-zero']);
    expect(entries[1]).toMatchObject({ devmajor: 0, devminor: 0 });
  });

  it('refuses a file whose name reads as a whiteout', async () => {
    const tree = await fresh('wh-name');
    await put(tree, 'etc/.wh.x', 'not a whiteout');
    await expect(walkLayer(tree, { kind: 'rootfs', epoch: EPOCH })).rejects.toThrow(/\.wh\.x.*cannot be stored in a layer/);
    await expect(walkLayer(tree, { kind: 'upper', epoch: EPOCH })).rejects.toThrow(/OCI whiteout/);
  });

  it('packs the same tree, made twice at different times, into the same digests', async () => {
    const make = async (name: string, when: number) => {
      const t = await fresh(name);
      await put(t, 'usr/bin/tool', 'binary', 0o755);
      await put(t, 'etc/conf', 'conf');
      await symlink('tool', join(t, 'usr/bin/alias'));
      await link(join(t, 'etc/conf'), join(t, 'etc/conf.hard'));
      mknod(join(t, 'etc/gone'), 'c', 0, 0);
      await touchAll(t, when);
      return t;
    };
    const a = await make('repro-a', EPOCH + 10);
    await new Promise((r) => setTimeout(r, 20));
    const b = await make('repro-b', EPOCH + 99_999);
    const results = [];
    for (const [t, compression] of [
      [a, 'zstd'],
      [b, 'zstd'],
      [a, 'gzip'],
      [b, 'gzip'],
    ] as const) {
      const entries = await walkLayer(t, { kind: 'upper', epoch: EPOCH, lowers: [] });
      results.push(await packLayer(entries, join(dir, `${++seq}.layer`), compression));
    }
    const [za, zb, ga, gb] = results;
    expect(zb).toEqual(za);
    expect(gb).toEqual(ga);
    expect(ga!.diffId).toBe(za!.diffId); // the same tar, compressed two ways
    expect(ga!.digest).not.toBe(za!.digest);
    expect(za!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    expect(ga!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(za!.tarSize % 512).toBe(0);
  });
});

describe.skipIf(!root)('packing a walked tree', () => {
  /** A tree with a file spanning three 4 MiB batches, more entries than a walk slice, links, an xattr. */
  async function pinTree(): Promise<string> {
    const t = await fresh('pin');
    const big = Buffer.alloc(9 * 1024 * 1024 + 123);
    let x = 1;
    for (let i = 0; i < big.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      big[i] = i % 3 ? x >>> 24 : 0x41;
    }
    await put(t, 'usr/lib/big.bin', big);
    for (let i = 0; i < 600; i++) await put(t, `usr/share/many/f${String(i).padStart(3, '0')}`, `file ${i}\n`.repeat(i % 7));
    await put(t, 'usr/bin/tool', '#!/bin/sh\necho tool\n', 0o755);
    await put(t, 'usr/bin/suid', 'x', 0o4755);
    await symlink('tool', join(t, 'usr/bin/alias'));
    await link(join(t, 'usr/bin/tool'), join(t, 'usr/bin/tool.hard'));
    setfattr(join(t, 'usr/bin/tool'), 'user.vztpl', 'pinned');
    execFileSync('mkfifo', [join(t, 'usr/fifo')]);
    const dirs = async (d: string) => {
      for (const e of await readdir(d, { withFileTypes: true })) if (e.isDirectory()) {
        await chmod(join(d, e.name), 0o755);
        await dirs(join(d, e.name));
      }
    };
    await dirs(t);
    await touchAll(t, EPOCH + 50);
    await utimes(join(t, 'usr/bin/tool'), EPOCH - 100, EPOCH - 100);
    return t;
  }

  it('the streaming walk gives the same entries, and either packs to the pinned digests', async () => {
    const t = await pinTree();
    const opts = { kind: 'rootfs' as const, epoch: EPOCH };
    const batches: LayerEntry[][] = [];
    for await (const batch of layerEntries(t, opts)) batches.push(batch);
    const list = await walkLayer(t, opts);
    expect(batches.flat()).toEqual(list);
    expect(list.length).toBeGreaterThan(600);
    expect(list.find((e) => e.path === 'usr/bin/tool')?.xattrs?.get('user.vztpl')?.toString()).toBe('pinned');
    // The digests the packer gave before the walk streamed into it. The blob digests also depend
    // on the zstd and zlib that Node bundles.
    const tarPin = { diffId: 'sha256:4b822f2b83dcc4f5282985c8f2f825389b69d86020d5802344e7e905ef5e7a0b', tarSize: 10018816 };
    const pins = {
      zstd: { ...tarPin, digest: 'sha256:4819a4baceec1055b4d0d4053e0ebe37809a25bf104efb2ee17d3cddfc38649d', size: 7442496 },
      gzip: { ...tarPin, digest: 'sha256:8aa1d8aaf3cfa30a0605db487178d2c7c9c5f3f695b0babc50469ccd7f517c52', size: 7443571 },
    };
    for (const compression of ['zstd', 'gzip'] as const) {
      const fromList = await packLayer(list, join(dir, `${++seq}.layer`), compression);
      const streamed = await packLayer(layerEntries(t, opts), join(dir, `${++seq}.layer`), compression);
      expect(fromList).toMatchObject(pins[compression]);
      expect(streamed).toEqual(fromList);
    }
  });

  it('nonEmptyLayerEntries: undefined for an empty tree, else every entry', async () => {
    expect(await nonEmptyLayerEntries(await fresh('empty'), { kind: 'upper', epoch: EPOCH })).toBeUndefined();
    const t = await fresh('small');
    await put(t, 'etc/a', 'a');
    const got: LayerEntry[] = [];
    for await (const batch of (await nonEmptyLayerEntries(t, { kind: 'upper', epoch: EPOCH }))!) got.push(...batch);
    expect(summary(got)).toEqual(['dir etc', 'file etc/a']);
  });

  it('a walk that fails mid-stream fails the packing, and leaves no unhandled rejection', async () => {
    const t = await fresh('stream-fail');
    for (let i = 0; i < 700; i++) await put(t, `a/f${String(i).padStart(3, '0')}`, 'x');
    await put(t, 'z/.wh.bad', 'x');
    await expect(packLayer(layerEntries(t, { kind: 'rootfs', epoch: EPOCH }), join(dir, `${++seq}.layer`), 'zstd')).rejects.toThrow(/cannot be stored in a layer/);
  });
});

describe.skipIf(!root)('cleanTree', () => {
  const policy = (p: Record<string, unknown> = {}) => cleanupSchema.parse(p);

  it('cleans a root filesystem: removes and truncates per-machine state, resets hostname and resolv.conf', async () => {
    const t = await fresh('clean-rootfs');
    await put(t, 'etc/machine-id', 'abcdef0123456789\n', 0o444);
    await put(t, 'var/lib/dbus/machine-id', 'abcdef\n');
    await put(t, 'etc/ssh/ssh_host_rsa_key', 'secret', 0o600);
    await put(t, 'etc/ssh/ssh_host_rsa_key.pub', 'public');
    await put(t, 'etc/ssh/sshd_config', 'Port 22\n');
    await put(t, 'var/lib/systemd/random-seed', 'seed');
    await put(t, 'var/cache/ldconfig/aux-cache', 'aux');
    await put(t, 'var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease', 'rel');
    await put(t, 'var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages', 'pkgs');
    await put(t, 'var/lib/apt/lists/lock', '');
    await mkdir(join(t, 'var/lib/apt/lists/partial'), { recursive: true });
    await put(t, 'var/cache/apt/archives/netbase_6.4_all.deb', 'deb');
    await put(t, 'var/cache/apt/archives/lock', '');
    await mkdir(join(t, 'var/cache/apt/archives/partial'), { recursive: true });
    await put(t, 'var/cache/apt/pkgcache.bin', 'bin');
    await put(t, 'var/cache/debconf/config.dat-old', 'old');
    await put(t, 'var/cache/debconf/config.dat', 'keep');
    await put(t, 'var/lib/dpkg/status-old', 'old');
    await put(t, 'var/lib/dpkg/status', 'keep');
    await put(t, 'var/log/dpkg.log', 'lots of lines');
    await put(t, 'var/log/apt/term.log', 'more lines');
    await put(t, 'var/log/syslog.1.gz', 'gz');
    await put(t, 'tmp/build-junk', 'junk');
    await put(t, 'var/tmp/junk', 'junk');
    await put(t, 'root/.bash_history', 'ls');
    await mkdir(join(t, 'dev'));
    mknod(join(t, 'dev/null'), 'c', 1, 3);
    await put(t, 'run/lock/x', '');
    await put(t, 'etc/hostname', 'build-host\n');
    await put(t, 'etc/resolv.conf', 'nameserver 10.0.0.1\n');

    const cleaned = await cleanTree({ dir: t, kind: 'rootfs' }, policy());
    const gone = [
      'var/lib/dbus/machine-id',
      'etc/ssh/ssh_host_rsa_key',
      'etc/ssh/ssh_host_rsa_key.pub',
      'var/lib/systemd/random-seed',
      'var/cache/ldconfig/aux-cache',
      'var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease',
      'var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages',
      'var/cache/apt/archives/netbase_6.4_all.deb',
      'var/cache/apt/pkgcache.bin',
      'var/cache/debconf/config.dat-old',
      'var/lib/dpkg/status-old',
      'var/log/syslog.1.gz',
      'tmp/build-junk',
      'var/tmp/junk',
      'root/.bash_history',
      'dev/null',
      'run/lock',
    ];
    for (const p of gone) expect({ p, exists: await exists(join(t, p)) }).toEqual({ p, exists: false });
    const kept = ['etc/ssh/sshd_config', 'var/lib/apt/lists/lock', 'var/lib/apt/lists/partial', 'var/cache/apt/archives/lock', 'var/cache/apt/archives/partial', 'var/cache/debconf/config.dat', 'var/lib/dpkg/status', 'dev', 'run', 'tmp', 'var/tmp'];
    for (const p of kept) expect({ p, exists: await exists(join(t, p)) }).toEqual({ p, exists: true });
    // Truncated, not removed: the file stays with its mode.
    for (const p of ['etc/machine-id', 'var/log/dpkg.log', 'var/log/apt/term.log']) expect(await readFile(join(t, p), 'utf8')).toBe('');
    expect((await lstat(join(t, 'etc/machine-id'))).mode & 0o7777).toBe(0o444);
    expect(await readFile(join(t, 'etc/hostname'), 'utf8')).toBe('localhost\n');
    expect(await readFile(join(t, 'etc/resolv.conf'), 'utf8')).toBe('');
    // It reports what it did, as template paths.
    expect(cleaned).toEqual(expect.arrayContaining(['/etc/machine-id', '/etc/ssh/ssh_host_rsa_key', '/dev/null', '/var/log/dpkg.log']));
    expect(cleaned).not.toContain('/etc/ssh/sshd_config');
    // A second pass has nothing left to do.
    expect(await cleanTree({ dir: t, kind: 'rootfs' }, policy())).toEqual([]);
  });

  it('in an upper dir drops cleaned paths a lower layer has, truncates new ones, keeps whiteouts and /dev', async () => {
    const lowerDir = await fresh('clean-lower');
    await put(lowerDir, 'etc/machine-id', '');
    await put(lowerDir, 'var/log/dpkg.log', '');
    const up = await fresh('clean-upper');
    await put(up, 'etc/machine-id', 'a-new-id\n');
    await put(up, 'var/log/dpkg.log', 'appended lines');
    await put(up, 'var/log/nginx.log', 'new log');
    await put(up, 'etc/ssh/ssh_host_ed25519_key', 'secret');
    mknod(join(up, 'etc/ssh/ssh_host_rsa_key'), 'c', 0, 0); // the step deleted a lower key: content
    await mkdir(join(up, 'dev'));
    mknod(join(up, 'dev/null'), 'c', 1, 3);
    await put(up, 'etc/hostname', 'set-by-step\n');

    const cleaned = await cleanTree({ dir: up, kind: 'upper', lowers: [lowerDir] }, policy());
    // In a lower layer already (and clean there): dropped from the upper dir, not truncated.
    expect(await exists(join(up, 'etc/machine-id'))).toBe(false);
    expect(await exists(join(up, 'var/log/dpkg.log'))).toBe(false);
    // New in this step: truncated.
    expect(await readFile(join(up, 'var/log/nginx.log'), 'utf8')).toBe('');
    expect(await exists(join(up, 'etc/ssh/ssh_host_ed25519_key'))).toBe(false);
    // The whiteout stays; /dev and hostname are only the first layer's business.
    expect((await lstat(join(up, 'etc/ssh/ssh_host_rsa_key'))).isCharacterDevice()).toBe(true);
    expect(await exists(join(up, 'dev/null'))).toBe(true);
    expect(await readFile(join(up, 'etc/hostname'), 'utf8')).toBe('set-by-step\n');
    expect(cleaned.sort()).toEqual(['/etc/machine-id', '/etc/ssh/ssh_host_ed25519_key', '/var/log/dpkg.log', '/var/log/nginx.log']);
  });

  it('follows the policy: keep, extra paths, defaults off', async () => {
    const make = async (name: string) => {
      const t = await fresh(name);
      await put(t, 'var/log/dpkg.log', 'log');
      await put(t, 'etc/machine-id', 'id');
      await put(t, 'opt/junk/a', 'a');
      await put(t, 'opt/cache-1', '1');
      await put(t, 'opt/cache-2', '2');
      return t;
    };
    const kept = await make('policy-keep');
    await cleanTree({ dir: kept, kind: 'upper', lowers: [] }, policy({ keep: ['/var/log/*'], paths: ['/opt/junk', '/opt/cache-*'] }));
    expect(await readFile(join(kept, 'var/log/dpkg.log'), 'utf8')).toBe('log');
    expect(await readFile(join(kept, 'etc/machine-id'), 'utf8')).toBe('');
    expect(await readdir(join(kept, 'opt'))).toEqual([]);

    const off = await make('policy-off');
    await cleanTree({ dir: off, kind: 'upper', lowers: [] }, policy({ defaults: false, paths: ['/opt/junk'] }));
    expect(await readFile(join(off, 'var/log/dpkg.log'), 'utf8')).toBe('log');
    expect(await readFile(join(off, 'etc/machine-id'), 'utf8')).toBe('id');
    expect((await readdir(join(off, 'opt'))).sort()).toEqual(['cache-1', 'cache-2']);

    expect(cleanupRules(policy({ defaults: false }), 'upper')).toEqual([]);
    expect(cleanupRules(policy({ defaults: false }), 'rootfs').map((r) => r.path)).toEqual(['/dev/*', '/run/*', '/proc/*', '/sys/*']);
  });
});
