// The pure tar header encoder (format/tar/header.ts) and the packer's tar stream, checked with
// readers that share no code with them: tar-stream's extract, and GNU tar.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK, encodeHeader, END_OF_ARCHIVE, padding, type TarEntry } from '../../format/tar/header.ts';
import { tarChunks } from '../../format/tar/pack.ts';
import type { LayerEntry } from '../../format/tar/walk.ts';
import { readTar } from '../helpers/oci-apply.ts';

const T = 1_700_000_000;
const base = { mode: 0o644, uid: 0, gid: 0, size: 0, mtime: T } as const;

/** A whole archive of header-only entries (plus data for files). */
function archive(entries: { entry: TarEntry; data?: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const { entry, data } of entries) {
    parts.push(encodeHeader(entry));
    if (data) parts.push(data, Buffer.alloc(padding(data.length)));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/** A binary xattr value (0x80 and 0xff are not UTF-8). */
const CAP = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x80, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
const longAscii = `${'a-directory-name/'.repeat(8)}and-a-file-name.txt`;
const nonAscii = 'etc/grüße/日本語.txt';
const longNonAscii = `${'ünïcödé/'.repeat(15)}fïlé`;

describe('encodeHeader', () => {
  it('writes whole 512-byte blocks, the same bytes for the same entry', () => {
    const entries: TarEntry[] = [
      { ...base, path: 'etc/hostname', type: 'file', size: 10 },
      { ...base, path: longAscii, type: 'file' },
      { ...base, path: 'x', type: 'file', xattrs: new Map([['user.a', Buffer.from('b')]]) },
    ];
    for (const e of entries) {
      const h = encodeHeader(e);
      expect(h.length % BLOCK).toBe(0);
      expect(encodeHeader({ ...e }).equals(h)).toBe(true);
    }
    // A plain short entry is one ustar block; pax is only used when needed.
    expect(encodeHeader(entries[0]!).length).toBe(BLOCK);
    expect(encodeHeader(entries[1]!).length).toBeGreaterThan(BLOCK);
    expect(padding(0)).toBe(0);
    expect(padding(1)).toBe(511);
    expect(padding(512)).toBe(0);
    expect(padding(513)).toBe(511);
  });

  it('round-trips through tar-stream: long and non-ASCII paths, big ids, xattrs, links, devices', async () => {
    const hello = Buffer.from('hello world\n');
    const big = 3_000_000; // more than the 7 octal digits of ustar (2097151)
    const entries: { entry: TarEntry; data?: Buffer }[] = [
      { entry: { ...base, path: 'etc', type: 'dir', mode: 0o755 } },
      { entry: { ...base, path: 'etc/hello', type: 'file', size: hello.length, mtime: T + 1 }, data: hello },
      { entry: { ...base, path: longAscii, type: 'file', size: 3 }, data: Buffer.from('abc') },
      { entry: { ...base, path: nonAscii, type: 'file', size: 1 }, data: Buffer.from('x') },
      { entry: { ...base, path: longNonAscii, type: 'dir', mode: 0o700 } },
      { entry: { ...base, path: 'home/big', type: 'file', uid: big, gid: big + 1 } },
      { entry: { ...base, path: 'home/edge', type: 'file', uid: 2_097_151, gid: 2_097_151 } },
      { entry: { ...base, path: 'usr/bin/su', type: 'file', mode: 0o4755 } },
      { entry: { ...base, path: 'usr/bin/x', type: 'file', xattrs: new Map([['user.comment', Buffer.from('some text')], ['security.selinux', Buffer.from('system_u:object_r:bin_t:s0')]]) } },
      { entry: { ...base, path: 'usr/bin/ping', type: 'file', xattrs: new Map([['security.capability', CAP]]) } },
      { entry: { ...base, path: 'etc/link', type: 'symlink', mode: 0o777, linkname: '../usr/bin/x' } },
      { entry: { ...base, path: 'etc/longlink', type: 'symlink', mode: 0o777, linkname: `/${longNonAscii}` } },
      { entry: { ...base, path: 'etc/hard', type: 'link', linkname: 'etc/hello' } },
      { entry: { ...base, path: `hard-${longAscii}`, type: 'link', linkname: longAscii } },
      { entry: { ...base, path: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 } },
      { entry: { ...base, path: 'dev/sda1', type: 'block', mode: 0o660, gid: 6, devmajor: 8, devminor: 1 } },
      { entry: { ...base, path: 'dev/big', type: 'char', devmajor: 511, devminor: 300000 } },
      { entry: { ...base, path: 'run/fifo', type: 'fifo', mode: 0o600 } },
    ];
    const got = await readTar(archive(entries));
    expect(got.map((g) => g.header.name.replace(/\/$/, ''))).toEqual(entries.map((e) => e.entry.path));
    const by = (path: string) => got.find((g) => g.header.name.replace(/\/$/, '') === path)!;

    expect(by('etc').header).toMatchObject({ type: 'directory', mode: 0o755, uid: 0, gid: 0 });
    expect(by('etc/hello').header).toMatchObject({ type: 'file', size: hello.length, mode: 0o644 });
    expect(by('etc/hello').header.mtime.getTime()).toBe((T + 1) * 1000);
    expect(by('etc/hello').data).toEqual(hello);
    expect(by(longAscii).data.toString()).toBe('abc');
    expect(by(nonAscii).data.toString()).toBe('x');
    expect(by(longNonAscii).header).toMatchObject({ type: 'directory', mode: 0o700 });
    // tar-stream applies the pax path but not uid/gid: the record is there, the ustar field clamped.
    expect(by('home/big').header.pax).toMatchObject({ uid: String(big), gid: String(big + 1) });
    expect(by('home/big').header.uid).toBe(2_097_151);
    expect(by('home/edge').header).toMatchObject({ uid: 2_097_151, gid: 2_097_151 });
    expect(by('home/edge').header.pax ?? {}).not.toHaveProperty('uid');
    expect(by('usr/bin/su').header.mode).toBe(0o4755);
    expect(by('usr/bin/x').header.pax).toMatchObject({
      'SCHILY.xattr.user.comment': 'some text',
      'SCHILY.xattr.security.selinux': 'system_u:object_r:bin_t:s0',
    });
    // The test helper's raw scan keeps binary values that tar-stream's UTF-8 strings corrupt.
    expect(by('usr/bin/ping').xattrs.get('security.capability')).toEqual(CAP);
    expect(by('usr/bin/ping').header.pax?.['SCHILY.xattr.security.capability']).not.toBe(CAP.toString('latin1'));
    expect(by('usr/bin/x').xattrs.get('user.comment')?.toString()).toBe('some text');
    expect(by('etc/link').header).toMatchObject({ type: 'symlink', linkname: '../usr/bin/x' });
    expect(by('etc/longlink').header).toMatchObject({ type: 'symlink', linkname: `/${longNonAscii}` });
    expect(by('etc/hard').header).toMatchObject({ type: 'link', linkname: 'etc/hello', size: 0 });
    expect(by(`hard-${longAscii}`).header).toMatchObject({ type: 'link', linkname: longAscii });
    expect(by('dev/null').header).toMatchObject({ type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 });
    expect(by('dev/sda1').header).toMatchObject({ type: 'block-device', devmajor: 8, devminor: 1, gid: 6 });
    expect(by('dev/big').header).toMatchObject({ type: 'character-device', devmajor: 511, devminor: 300000 });
    expect(by('run/fifo').header).toMatchObject({ type: 'fifo', mode: 0o600 });
  });

  it('gives readers that ignore pax a printable, truncated ustar name', async () => {
    const h = encodeHeader({ ...base, path: longNonAscii, type: 'file' });
    // The last block is the ustar header; its name field is the first 100 bytes.
    const ustar = h.subarray(h.length - BLOCK);
    const name = ustar.subarray(0, 100).toString('latin1').replace(/\0+$/, '');
    expect(name).toMatch(/^[\x20-\x7e]+$/);
    expect(name.length).toBeLessThanOrEqual(99);
  });
});

describe('the packed tar stream and GNU tar', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vztpl-tar-header-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The packer's uncompressed stream, from entries whose files are written to dir/src. */
  async function packed(specs: { entry: LayerEntry; data?: string | Buffer }[]): Promise<string> {
    const entries: LayerEntry[] = [];
    for (const [i, { entry, data }] of specs.entries()) {
      if (data === undefined) {
        entries.push(entry);
        continue;
      }
      const source = join(dir, `src-${i}`);
      await writeFile(source, data);
      entries.push({ ...entry, size: Buffer.byteLength(data), source });
    }
    const file = join(dir, `layer-${Math.random().toString(36).slice(2)}.tar`);
    await writeFile(file, Buffer.concat([...tarChunks(entries)]));
    return file;
  }

  it('GNU tar lists the same names, types, modes, owners and link targets', async () => {
    const bigData = Buffer.alloc(5 * 1024 * 1024 + 7, 0x61); // spans the packer's 4 MiB batches
    const file = await packed([
      { entry: { ...base, path: 'etc', type: 'dir', mode: 0o755 } },
      { entry: { ...base, path: 'etc/hello', type: 'file' }, data: 'hello\n' },
      { entry: { ...base, path: longAscii, type: 'file', uid: 1000, gid: 100 }, data: 'long' },
      { entry: { ...base, path: nonAscii, type: 'file' }, data: 'utf8' },
      { entry: { ...base, path: 'home/big', type: 'file', uid: 3_000_000, gid: 3_000_001 }, data: '' },
      { entry: { ...base, path: 'usr/big.bin', type: 'file' }, data: bigData },
      { entry: { ...base, path: 'etc/link', type: 'symlink', mode: 0o777, linkname: 'hello' } },
      { entry: { ...base, path: 'etc/hard', type: 'link', linkname: 'etc/hello' } },
      { entry: { ...base, path: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 } },
      { entry: { ...base, path: 'etc/.wh.gone', type: 'file' }, data: '' },
    ]);
    const names = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).trim().split('\n');
    expect(names).toEqual(['etc/', 'etc/hello', longAscii, nonAscii, 'home/big', 'usr/big.bin', 'etc/link', 'etc/hard', 'dev/null', 'etc/.wh.gone']);
    const verbose = execFileSync('tar', ['--numeric-owner', '--utc', '-tvf', file], { encoding: 'utf8' }).trim().split('\n');
    expect(verbose[0]).toMatch(/^drwxr-xr-x 0\/0 +0 2023-11-14 22:13 etc\/$/);
    expect(verbose[1]).toMatch(/^-rw-r--r-- 0\/0 +6 2023-11-14 22:13 etc\/hello$/);
    expect(verbose[2]).toMatch(/^-rw-r--r-- 1000\/100 +4 /);
    expect(verbose[4]).toMatch(/^-rw-r--r-- 3000000\/3000001 +0 /);
    expect(verbose[5]).toMatch(new RegExp(`^-rw-r--r-- 0/0 +${bigData.length} `));
    expect(verbose[6]).toMatch(/^lrwxrwxrwx 0\/0 +0 .* etc\/link -> hello$/);
    expect(verbose[7]).toMatch(/^hrw-r--r-- 0\/0 +0 .* etc\/hard link to etc\/hello$/);
    expect(verbose[8]).toMatch(/^crw-rw-rw- 0\/0 +1,3 .* dev\/null$/);
    // And the data: GNU tar extracts the same bytes.
    expect(execFileSync('tar', ['-xOf', file, 'usr/big.bin'], { maxBuffer: 64 << 20 }).equals(bigData)).toBe(true);
    expect(execFileSync('tar', ['-xOf', file, nonAscii], { encoding: 'utf8' })).toBe('utf8');
  });

  it.skipIf(process.getuid?.() !== 0)('GNU tar restores SCHILY.xattr values byte for byte (binary too)', async () => {
    const binary = Buffer.from([0x00, 0x01, 0x80, 0xff, 0x0a, 0x3d]);
    const file = await packed([
      { entry: { ...base, path: 'f', type: 'file', xattrs: new Map([['user.bin', binary], ['user.text', Buffer.from('a=b c')]]) }, data: 'x' },
    ]);
    const out = join(dir, 'extracted');
    await mkdir(out);
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-xf', file, '-C', out]);
    const dump = execFileSync('getfattr', ['-d', '-m', '-', '-e', 'hex', 'f'], { cwd: out, encoding: 'utf8' });
    expect(dump).toContain(`user.bin=0x${binary.toString('hex')}`);
    expect(dump).toContain(`user.text=0x${Buffer.from('a=b c').toString('hex')}`);
    expect(await readFile(join(out, 'f'), 'utf8')).toBe('x');
  });
});
