// `vztpl export`: a built template flattened into the one tarball existing hosts take (OpenVZ's
// template cache, Proxmox's vztmpl), in every format. The oracle is independent of vztpl's own
// flattening: GNU tar extracts the export, and test/helpers/oci-apply.ts applies the layers one by
// one as a runtime would (whiteouts, opaque directories); the two trees must be the same.
// Needs root, mmdebstrap (or a warm build cache), GNU tar, gzip, xz and zstd.
import { readdir, readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { cliBuild, isRoot, runCli, tempDir, writeFiles } from '../helpers/build-env.ts';
import { buildTemplates, cleanupWork, exists, sh, shOk } from '../helpers/host-env.ts';
import { applyLayout } from '../helpers/oci-apply.ts';
import { listTree } from '../helpers/tree-listing.ts';

const ready = isRoot && Boolean(findProgram('mmdebstrap')) && ['tar', 'xz', 'zstd'].every((p) => findProgram(p));

const CHANGES = `name: debian-12-x86_64-exportfix
version: 2.1.0
description: deletes a file, replaces a directory, adds a file, so the layers carry whiteouts
from: debian-12-x86_64-hostbase
steps:
  - name: delete and replace
    run: |
      set -e
      rm -f /etc/motd /opt/vzt-host/base
      rm -rf /usr/share/doc
      mkdir -p /usr/share/doc/only
      echo kept > /usr/share/doc/only/file
  - name: add
    run: echo added > /opt/vzt-host/added
`;

const listing = (root: string) => listTree(root, Number.MAX_SAFE_INTEGER);

describe.skipIf(!ready)('vztpl export', () => {
  let work: string;
  let layout: string;
  let expected: string[];

  beforeAll(async () => {
    work = await tempDir('export');
    await buildTemplates(work);
    await writeFiles(join(work, 'recipes'), { 'debian-12-x86_64-exportfix.yaml': CHANGES });
    layout = join(work, 'out', 'debian-12-x86_64-exportfix');
    await cliBuild(join(work, 'recipes', 'debian-12-x86_64-exportfix.yaml'), layout);
    const applied = join(work, 'applied');
    await mkdir(applied);
    await applyLayout(layout, applied);
    expected = listing(applied);
    // The fixture does what it says: the whiteouts are in its layers.
    expect(await exists(join(applied, 'etc', 'motd'))).toBe(false);
    expect(await readdir(join(applied, 'usr', 'share', 'doc'))).toEqual(['only']);
  });

  afterAll(async () => {
    if (work) await cleanupWork(work);
  });

  for (const [file, magic] of [
    ['t.tar.gz', '1f8b'],
    ['t.tar.xz', 'fd377a585a00'],
    ['t.tar.zst', '28b52ffd'],
    ['t.tar', undefined],
  ] as const) {
    it(`-o ${file}: the format follows the name, and GNU tar extracts the same tree the layers make`, async () => {
      const out = join(work, file);
      const r = await runCli(['export', layout, '-o', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`to ${out}`);
      const head = (await readFile(out)).subarray(0, 6).toString('hex');
      if (magic) expect(head.startsWith(magic)).toBe(true);
      else expect((await readFile(out)).subarray(257, 262).toString('latin1')).toBe('ustar');
      const names = (await shOk('tar', ['-tf', out])).split('\n');
      expect(names.filter((n) => n.split('/').some((c) => c.startsWith('.wh.')))).toEqual([]);
      const root = join(work, `x-${file}`);
      await mkdir(root);
      await shOk('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', out, '-C', root]);
      expect(listing(root)).toEqual(expected);
      expect(await readFile(join(root, 'opt', 'vzt-host', 'added'), 'utf8')).toBe('added\n');
    });
  }

  it('.tar.gz is gzip members compressed in parallel: gzip -t and zcat read it whole, and exporting again gives the same bytes', async () => {
    const a = join(work, 'repro-a.tar.gz');
    const b = join(work, 'repro-b.tar.gz');
    for (const out of [a, b]) expect((await runCli(['export', layout, '-o', out])).code).toBe(0);
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);
    await shOk('gzip', ['-t', a]);
    // The same archive as the uncompressed export, through zcat.
    const tar = join(work, 'repro.tar');
    expect((await runCli(['export', layout, '-o', tar])).code).toBe(0);
    await shOk('sh', ['-c', `zcat '${a}' | cmp - '${tar}'`]);
    // More than one member (a 4 MiB chunk each).
    expect((await readFile(a)).indexOf(Buffer.from('1f8b08000000000000', 'hex'), 1)).toBeGreaterThan(0);
  });

  it('--format wins over the name; without -o the file is NAME.tar.gz in the working directory; VERSION picks the image', async () => {
    const img = join(work, 'rootfs.img');
    expect((await runCli(['export', layout, '-o', img, '--format', 'zst'])).code).toBe(0);
    expect((await readFile(img)).subarray(0, 4).toString('hex')).toBe('28b52ffd');
    const cwd = join(work, 'cwd');
    await mkdir(cwd);
    const r = await runCli(['export', `${layout}:2.1.0`], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(await readdir(cwd)).toEqual(['debian-12-x86_64-exportfix.tar.gz']);
  });

  it('bad input: exit 2 naming it; a failed write leaves nothing behind', async () => {
    const missing = await runCli(['export', join(work, 'no-such-layout'), '-o', join(work, 'n.tar')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no-such-layout');
    const format = await runCli(['export', layout, '-o', join(work, 'f.tar'), '--format', 'rar']);
    expect(format.code).toBe(2);
    expect(format.stderr).toContain('"rar"');
    const version = await runCli(['export', `${layout}:9.9.9`, '-o', join(work, 'v.tar')]);
    expect(version.code).toBe(2);
    expect(version.stderr).toContain('9.9.9');
    // A full disk mid-write: a 1 MiB tmpfs.
    const small = join(work, 'small');
    await mkdir(small);
    await shOk('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'vztpl-export-test', small]);
    try {
      const full = await runCli(['export', layout, '-o', join(small, 't.tar')]);
      expect(full.code).not.toBe(0);
      expect(full.stderr).toMatch(/ENOSPC|no space/i);
      expect(full.stderr).not.toContain('internal error');
      expect(await readdir(small)).toEqual([]);
    } finally {
      await sh('umount', [small]);
    }
  });
});
