// cache/extract.ts, the host's layer extraction, against the hostile corpus (test/cache/hostile.ts):
// every hostile case is refused naming its entry, leaving nothing (no target, no temp dir) and
// writing nothing outside (a sentinel directory next to the target, and a symlink to it, stay
// byte for byte and mtime for mtime as they were); every valid case extracts to exactly its
// listing. Then real layers: the project's own packer round-trips through extraction, an
// upper-dir layer's whiteouts and opaque dirs work as overlay lowerdirs, the Debian minbase
// layer extracts as GNU tar extracts it, a SIGKILLed extraction leaves only a temp dir that
// sweepStaleTemps removes, and a full filesystem fails with ENOSPC and nothing half-made.
// Needs root (owners, devices, trusted.* xattrs, mounts) and a real filesystem (/var/tmp).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_EXTRACT_POLICY,
  ExtractIOError,
  extractLayer,
  LayerExtractError,
  REFUSAL_KINDS,
  resolveExtractPolicy,
  sweepStaleTemps,
  type ExtractOptions,
} from '../../cache/extract.ts';
import type { Digest } from '../../format/digest.ts';
import { parseGetfattr } from '../../format/tar/xattrs.ts';
import { packLayer } from '../../format/tar/pack.ts';
import { walkLayer, type LayerEntry } from '../../format/tar/walk.ts';
import { listOverlay, listTree } from '../helpers/tree-listing.ts';
import { archive, compress, file, hostileCases, LOOSE_ENTRY, MEDIA_TYPE, sha256, T0, validCases, type Compression } from './hostile.ts';

const isRoot = process.getuid?.() === 0;
const CHILD = fileURLToPath(new URL('./extract-child.ts', import.meta.url));
const BLOBS = '/var/tmp/vztpl-test/build-cache/blobs/sha256';

let work: string;
let seq = 0;
beforeAll(async () => {
  await mkdir('/var/tmp', { recursive: true });
  work = await mkdtemp('/var/tmp/vztpl-extract-test-');
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Feeds a blob in odd-sized pieces, as a network stream would. */
async function* chunked(buf: Buffer, size = 8191): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/**
 * A fresh parent for a target: `sentinel/` (a file, a subdirectory) and `escape -> sentinel`,
 * the things a hostile layer aims at.
 */
async function arena(): Promise<{ base: string; target: string; sentinel: string }> {
  const base = join(work, `case-${++seq}`);
  const sentinel = join(base, 'sentinel');
  await mkdir(join(sentinel, 'sub'), { recursive: true });
  await writeFile(join(sentinel, 'keep'), 'sentinel\n');
  await writeFile(join(sentinel, 'sub', 'deep'), 'deep\n');
  await utimes(join(sentinel, 'sub'), T0 - 100, T0 - 100);
  await utimes(sentinel, T0 - 100, T0 - 100);
  await symlink(sentinel, join(base, 'escape'));
  return { base, target: join(base, 'layer'), sentinel };
}

/** Everything about the sentinel and the escape symlink, to the nanosecond. */
function sentinelState(base: string): string[] {
  const rows: string[] = [];
  const visit = (rel: string) => {
    const abs = join(base, rel);
    const st = lstatSync(abs, { bigint: true });
    let content = '';
    if (st.isFile()) content = createHash('sha256').update(readFileSync(abs)).digest('hex');
    if (st.isSymbolicLink()) content = readlinkSync(abs);
    rows.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeNs} ${st.ctimeNs} ${st.nlink} ${content}`);
    if (st.isDirectory()) for (const name of readdirSync(abs).sort()) visit(join(rel, name));
  };
  visit('sentinel');
  visit('escape');
  return rows;
}

function typeOf(mode: number): string {
  return { 0o100000: 'file', 0o040000: 'dir', 0o120000: 'symlink', 0o020000: 'char', 0o060000: 'block', 0o010000: 'fifo' }[mode & 0o170000] ?? 'other';
}

/** The listing the valid cases state (test/cache/hostile.ts): one row per path, the root as "./". */
function listLayer(root: string): string[] {
  let text = '';
  try {
    text = execFileSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { encoding: 'latin1', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (err) {
    text = String((err as { stdout?: string }).stdout ?? '');
  }
  const xattrs = parseGetfattr(text);
  const rows: string[] = [];
  const row = (rel: string, abs: string) => {
    const st = lstatSync(abs);
    const type = typeOf(st.mode);
    let r = `${rel === '' ? './' : rel} ${type} ${(st.mode & 0o7777).toString(8).padStart(4, '0')} ${st.uid}:${st.gid}`;
    if (type === 'file') r += ` ${st.size} ${createHash('sha256').update(readFileSync(abs)).digest('hex').slice(0, 16)}`;
    if (type === 'symlink') r += ` -> ${readlinkSync(abs, 'utf8')}`;
    if (type === 'char' || type === 'block') r += ` ${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`;
    r += ` @${Math.floor(st.mtimeMs / 1000)}`;
    const xa = xattrs.get(abs);
    if (xa?.size) r += ` xattrs ${[...xa].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v.toString('hex')}`).join(',')}`;
    if (type === 'file' && st.nlink > 1) r += ` links ${st.nlink}`;
    rows.push(r);
    if (type === 'dir') for (const name of readdirSync(abs).sort()) row(rel ? `${rel}/${name}` : name, join(abs, name));
  };
  row('', root);
  return rows;
}

/** `actual` with mtimes replaced by `@*` where the expected row says any mtime will do. */
function matchListing(actual: string[], expected: string[]): { actual: string[]; expected: string[] } {
  const wanted = new Set(expected);
  const norm = actual.map((r) => {
    const loose = r.replace(/ @\d+/, ' @*');
    return !wanted.has(r) && wanted.has(loose) ? loose : r;
  });
  return { actual: norm.sort(), expected: [...expected].sort() };
}

async function extractBuffer(blob: Buffer, opts: Omit<ExtractOptions, 'durable'>) {
  return extractLayer(chunked(blob), { ...opts, durable: false });
}

describe('extract policy', () => {
  it('has the strict defaults and loosens only what is asked', () => {
    expect(DEFAULT_EXTRACT_POLICY).toMatchObject({ maxEntries: 1_000_000, maxTotalBytes: 64 * 2 ** 30, maxPathLength: 4096, maxComponentLength: 255, allowDevices: 'whiteouts-only', allowSetuid: true, allowHardlinkOutsideLayer: false });
    expect(resolveExtractPolicy({ allowDevices: 'all', maxEntries: undefined })).toEqual({ ...DEFAULT_EXTRACT_POLICY, allowDevices: 'all' });
    expect(() => resolveExtractPolicy({ maxEntries: -1 })).toThrow(/maxEntries/);
    expect(() => resolveExtractPolicy({ allowDevices: 'some' as never })).toThrow(/allowDevices/);
    expect(() => resolveExtractPolicy({ allowHardlinkOutsideLayer: true as never })).toThrow(/only be false/);
  });
});

describe.skipIf(!isRoot)('hostile layers are refused', () => {
  // The sentinel's absolute path is only known per case: build the corpus against a
  // placeholder and substitute it (the names and expectations do not depend on it).
  const PLACEHOLDER = '/SENTINEL-PLACEHOLDER';
  const cases = hostileCases(PLACEHOLDER);

  it('the corpus has one case per way to be refused', () => {
    expect(cases.length).toBeGreaterThanOrEqual(80);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it('the corpus has a case for every refusal kind the stream can reach', () => {
    const covered = new Set(cases.flatMap((c) => [c.kind].flat()));
    // readTar refuses NUL bytes in names (nul-in-name) and hardlinkTarget absolute targets
    // (hardlink-absolute) first; an existing target is refused before any byte is read
    // ('extraction mechanics').
    const unreachable = ['path-nul-byte', 'hardlink-path-absolute', 'target-exists'];
    expect(REFUSAL_KINDS.filter((k) => !covered.has(k)).sort()).toEqual(unreachable.sort());
  });

  for (const template of cases) {
    for (const compression of template.compressions ?? (['zstd', 'gzip'] as Compression[])) {
      it(`${template.name} (${compression})`, async () => {
        const { base, target, sentinel } = await arena();
        const c = hostileCases(sentinel).find((x) => x.name === template.name)!;
        const before = sentinelState(base);
        let blob = compress(c.tar, compression);
        if (c.blob) blob = c.blob(blob);
        const digest = c.wrongDigest ? sha256('another blob') : sha256(blob);
        const err = await extractBuffer(blob, {
          mediaType: c.mediaType ?? MEDIA_TYPE[compression],
          expectedDigest: digest,
          expectedDiffId: c.wrongDiffId ? sha256('another tar') : c.blob ? undefined : sha256(c.tar),
          expectedSize: c.shortSize ? blob.length - 1 : undefined,
          target,
          policy: c.policy,
        }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, 'extraction must fail').toBeInstanceOf(LayerExtractError);
        const e = err as LayerExtractError;
        expect(e.name).toBe(c.error);
        expect([c.kind].flat()).toContain(e.kind);
        if (!LOOSE_ENTRY.has(c.name)) expect(e.entry).toBe(c.entry);
        expect(e.reason).toMatch(c.reason);
        expect(e.layer).toBe(digest);
        expect(e.message).toContain(digest);
        if (e.entry !== undefined) expect(e.message).toContain(JSON.stringify(e.entry).slice(0, 200));
        // Nothing left behind, nothing written outside.
        expect((await readdir(base)).sort()).toEqual(['escape', 'sentinel']);
        expect(sentinelState(base)).toEqual(before);
      });
    }
  }
});

describe.skipIf(!isRoot)('valid edge cases extract exactly', () => {
  const PLACEHOLDER = '/SENTINEL-PLACEHOLDER';
  for (const template of validCases(PLACEHOLDER)) {
    for (const compression of ['zstd', 'gzip', 'none'] as Compression[]) {
      it(`${template.name} (${compression})`, async () => {
        const { base, target, sentinel } = await arena();
        const c = validCases(sentinel).find((x) => x.name === template.name)!;
        const before = sentinelState(base);
        const blob = compress(c.tar, compression);
        const result = await extractBuffer(blob, { mediaType: MEDIA_TYPE[compression], expectedDigest: sha256(blob), expectedDiffId: sha256(c.tar), target, policy: c.policy });
        expect(result).toMatchObject({ digest: sha256(blob), diffId: sha256(c.tar), bytes: c.tar.length, blobBytes: blob.length });
        const { actual, expected } = matchListing(listLayer(target), c.listing);
        expect(actual).toEqual(expected);
        expect((await readdir(base)).sort()).toEqual(['escape', 'layer', 'sentinel']);
        expect(sentinelState(base)).toEqual(before);
      });
    }
  }
});

describe.skipIf(!isRoot)('extraction mechanics', () => {
  it('refuses a target that exists, touching nothing', async () => {
    const { base, target } = await arena();
    await mkdir(target);
    await writeFile(join(target, 'mine'), 'x');
    const blob = compress(archive(file('a', 'x')), 'zstd');
    await expect(extractBuffer(blob, { mediaType: MEDIA_TYPE.zstd, expectedDigest: sha256(blob), target })).rejects.toThrow(/exists/);
    await expect(extractBuffer(blob, { mediaType: MEDIA_TYPE.zstd, expectedDigest: sha256(blob), target })).rejects.toMatchObject({ name: 'LayerExtractError', kind: 'target-exists' });
    expect(readdirSync(target)).toEqual(['mine']);
    expect((await readdir(base)).sort()).toEqual(['escape', 'layer', 'sentinel']);
  });

  it("passes the source's own error on and removes the temp dir", async () => {
    const { base, target } = await arena();
    const blob = compress(archive(file('a', Buffer.alloc(200_000, 1)), file('b', 'x')), 'gzip');
    async function* failing(): AsyncGenerator<Buffer> {
      yield blob.subarray(0, blob.length >> 1);
      throw new Error('connection reset by registry');
    }
    await expect(extractLayer(failing(), { mediaType: MEDIA_TYPE.gzip, expectedDigest: sha256(blob), target, durable: false })).rejects.toThrow('connection reset by registry');
    expect((await readdir(base)).sort()).toEqual(['escape', 'sentinel']);
  });

  it('creates the parent of the target and syncs when durable', async () => {
    const target = join(work, `nested-${++seq}`, 'a', 'layer');
    const tar = archive(file('x', 'y'));
    const r = await extractLayer(chunked(tar), { mediaType: MEDIA_TYPE.none, expectedDigest: sha256(tar), target });
    expect(r.entries).toBe(1);
    expect(readFileSync(join(target, 'x'), 'utf8')).toBe('y');
  });

  it('sweepStaleTemps removes only the temp dirs of dead processes', async () => {
    const parent = join(work, `sweep-${++seq}`);
    await mkdir(parent);
    const mine = join(parent, `abc.tmp-${process.pid}-0123456789ab`);
    const dead = join(parent, 'def.tmp-999999999-0123456789ab');
    const other = join(parent, 'def.tmp-notapid');
    for (const d of [mine, dead, other]) await mkdir(join(d, 'sub'), { recursive: true });
    await chmod(join(dead, 'sub'), 0o500);
    expect(await sweepStaleTemps(parent)).toEqual([dead]);
    expect(readdirSync(parent).sort()).toEqual([`abc.tmp-${process.pid}-0123456789ab`, 'def.tmp-notapid']);
    expect(await sweepStaleTemps(join(work, 'no-such-dir'))).toEqual([]);
  });
});

/** Strips what differs between two walks of equal trees: where the bytes come from. */
const comparable = (entries: LayerEntry[]) => entries.map(({ source: _source, ...rest }) => ({ ...rest, xattrs: rest.xattrs ? Object.fromEntries([...rest.xattrs].map(([k, v]) => [k, v.toString('hex')])) : undefined }));

const EPOCH = 1_800_000_000;

/** Sets every mtime in the tree (children first) to `seconds`, so walks are not clamped. */
function touchAll(root: string, seconds: number): void {
  execFileSync('find', [root, '-depth', '-exec', 'touch', '-h', '-d', `@${seconds}`, '{}', '+']);
}

describe.skipIf(!isRoot)("the project's own layers", () => {
  it('a packed real tree round-trips: extract, walk again, same entries and listing', async () => {
    const tree = join(work, `tree-${++seq}`);
    const put = async (rel: string, content: string | Buffer, mode = 0o644) => {
      await mkdir(dirname(join(tree, rel)), { recursive: true });
      await writeFile(join(tree, rel), content);
      await chmod(join(tree, rel), mode);
    };
    await put('etc/hostname', 'vztpl\n');
    await put('etc/shadow', 'root:*:19000:0:99999:7:::\n', 0o640);
    await chown(join(tree, 'etc/shadow'), 0, 42);
    await put('usr/bin/passwd', Buffer.alloc(70_000, 0x7f), 0o4755);
    await put('usr/bin/ping', 'ping', 0o755);
    execFileSync('setfattr', ['-n', 'security.capability', '-v', '0x0100000200200000000000000000000000000000', join(tree, 'usr/bin/ping')]);
    await put('usr/share/doc/naïve/文件 with space', 'unicode\n');
    await put(`usr/share/${'deep/'.repeat(30)}${'long-name-'.repeat(20)}`, 'long\n');
    await put('usr/lib/big.so', Buffer.alloc(5 << 20, 0x42), 0o755);
    await link(join(tree, 'usr/bin/ping'), join(tree, 'usr/bin/ping6'));
    await symlink('/etc/hostname', join(tree, 'usr/hostname-link'));
    await symlink('../..', join(tree, 'usr/share/up'));
    await mkdir(join(tree, 'tmp'));
    await chmod(join(tree, 'tmp'), 0o1777);
    await mkdir(join(tree, 'var/mail'), { recursive: true });
    await chmod(join(tree, 'var/mail'), 0o2775);
    await chown(join(tree, 'var/mail'), 0, 8);
    await mkdir(join(tree, 'ro'));
    await put('ro/inside', 'x', 0o444);
    await chmod(join(tree, 'ro'), 0o555);
    execFileSync('mkfifo', ['-m', '600', join(tree, 'run-initctl')]);
    execFileSync('mknod', ['-m', '666', join(tree, 'null'), 'c', '1', '3']);
    execFileSync('setfattr', ['-n', 'user.comment', '-v', '0x00ff10', join(tree, 'etc/hostname')]);
    await chown(join(tree, 'etc/hostname'), 1000, 1000);
    touchAll(tree, T0);

    const original = await walkLayer(tree, { kind: 'rootfs', epoch: EPOCH });
    for (const compression of ['zstd', 'gzip'] as const) {
      const blobFile = join(work, `tree-${seq}.${compression}`);
      const packed = await packLayer(original, blobFile, compression);
      const target = join(work, `tree-${seq}-extracted-${compression}`);
      const result = await extractLayer(createReadStream(blobFile), {
        mediaType: packed.mediaType,
        expectedDigest: packed.digest,
        expectedDiffId: packed.diffId,
        expectedSize: packed.size,
        target,
        policy: { allowDevices: 'all' },
      });
      expect(result).toMatchObject({ digest: packed.digest, diffId: packed.diffId, bytes: packed.tarSize, blobBytes: packed.size, entries: original.length });
      const again = await walkLayer(target, { kind: 'rootfs', epoch: EPOCH });
      expect(comparable(again)).toEqual(comparable(original));
      expect(listTree(target, EPOCH)).toEqual(listTree(tree, EPOCH));
      // Packing the extracted tree gives the very same layer.
      const repacked = await packLayer(again, `${blobFile}.again`, compression);
      expect(repacked.diffId).toBe(packed.diffId);
    }
  });

  it('an upper-dir layer over a base layer, as overlay lowerdirs, shows its deletions', async () => {
    const lower = join(work, `lower-${++seq}`);
    const upper = join(work, `upper-${seq}`);
    const put = async (root: string, rel: string, content: string) => {
      await mkdir(dirname(join(root, rel)), { recursive: true });
      await writeFile(join(root, rel), content);
    };
    await put(lower, 'etc/issue.net', 'Debian\n');
    await put(lower, 'etc/motd', 'hi\n');
    await put(lower, 'etc/apt/apt.conf.d/70debconf', 'x\n');
    await put(lower, 'etc/apt/apt.conf.d/docker-clean', 'y\n');
    await put(lower, 'var/cache/apt/pkgcache.bin', 'cache\n');
    await put(lower, 'usr/share/doc/a/copyright', 'c\n');
    await put(lower, 'usr/share/doc/b/copyright', 'c\n');
    // The upper dir a step leaves, made as overlayfs makes it.
    await mkdir(join(upper, 'etc/apt/apt.conf.d'), { recursive: true });
    execFileSync('mknod', [join(upper, 'etc/issue.net'), 'c', '0', '0']); // rm /etc/issue.net
    execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(upper, 'etc/apt/apt.conf.d')]); // rm -rf + mkdir
    await put(upper, 'etc/apt/apt.conf.d/99test', 'new\n');
    await mkdir(join(upper, 'var/cache'), { recursive: true });
    execFileSync('mknod', [join(upper, 'var/cache/apt'), 'c', '0', '0']); // rm -rf a directory
    await mkdir(join(upper, 'usr/share/doc'), { recursive: true });
    execFileSync('mknod', [join(upper, 'usr/share/doc/a'), 'c', '0', '0']);
    execFileSync('mknod', [join(upper, 'usr/share/doc/b'), 'c', '0', '0']);
    await put(upper, 'etc/motd', 'changed\n');
    touchAll(lower, T0);
    touchAll(upper, T0 + 10);

    const baseEntries = await walkLayer(lower, { kind: 'rootfs', epoch: EPOCH });
    const upperEntries = await walkLayer(upper, { kind: 'upper', epoch: EPOCH, lowers: [lower] });
    expect(upperEntries.map((e) => e.path)).toEqual(expect.arrayContaining(['etc/.wh.issue.net', 'etc/apt/apt.conf.d/.wh..wh..opq', 'var/cache/.wh.apt', 'usr/share/doc/.wh.a']));
    const extracted: string[] = [];
    for (const [name, entries] of [['base', baseEntries], ['upper', upperEntries]] as const) {
      const blobFile = join(work, `${name}-${seq}.zst`);
      const packed = await packLayer(entries, blobFile, 'zstd');
      const target = join(work, `${name}-${seq}-layer`);
      await extractLayer(createReadStream(blobFile), { mediaType: packed.mediaType, expectedDigest: packed.digest, expectedDiffId: packed.diffId, target, durable: false });
      extracted.push(target);
    }
    const [baseLayer, upperLayer] = extracted as [string, string];
    // The extracted upper layer is an upper dir again: whiteouts are char 0/0, opaque dirs marked.
    const st = lstatSync(join(upperLayer, 'etc/issue.net'));
    expect(st.isCharacterDevice() && st.rdev === 0).toBe(true);
    expect(execFileSync('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', join(upperLayer, 'etc/apt/apt.conf.d')], { encoding: 'utf8' })).toBe('y');
    expect(comparable(await walkLayer(upperLayer, { kind: 'upper', epoch: EPOCH, lowers: [baseLayer] }))).toEqual(comparable(upperEntries));

    // Stacked as lowerdirs, the extracted layers show what the original upper over lower shows.
    const mnt = join(work, `mnt-${seq}`);
    await mkdir(mnt);
    const view = await listOverlay([upperLayer, baseLayer], mnt, EPOCH);
    const truth = await listOverlay([upper, lower], mnt, EPOCH);
    expect(view).toEqual(truth);
    const paths = view.map((row) => row.split('\t')[0]);
    expect(paths).not.toContain('etc/issue.net');
    expect(paths).not.toContain('var/cache/apt');
    expect(paths).not.toContain('usr/share/doc/a');
    expect(paths.filter((p) => p?.startsWith('etc/apt/apt.conf.d/'))).toEqual(['etc/apt/apt.conf.d/99test']);
    expect(view.find((row) => row.startsWith('etc/motd\t'))).toContain(createHash('sha256').update('changed\n').digest('hex'));
  });
});

/** The largest zstd layer in the build cache: the Debian minbase bootstrap layer. */
function debianBlob(): string | undefined {
  if (!existsSync(BLOBS)) return undefined;
  const zstdBlobs = readdirSync(BLOBS)
    .map((name) => ({ name, size: statSync(join(BLOBS, name)).size }))
    .filter(({ name, size }) => size > 10 << 20 && readFileSync(join(BLOBS, name)).subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])));
  zstdBlobs.sort((a, b) => b.size - a.size);
  return zstdBlobs[0] ? join(BLOBS, zstdBlobs[0].name) : undefined;
}

describe('the decoding thread', () => {
  const decoderModule = fileURLToPath(new URL('../../cache/extract-decoder.ts', import.meta.url));

  it('never keeps a process alive: started and unused, the process ends by itself', async () => {
    const script = join(work, `warm-up-${++seq}.ts`);
    await writeFile(script, `import { warmUpDecoder } from ${JSON.stringify(decoderModule)};\nwarmUpDecoder();\nconsole.log('started');\n`);
    const r = spawnSync(process.execPath, [script], { timeout: 20_000, encoding: 'utf8' });
    expect(r.error, 'the process did not end by itself').toBeUndefined();
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: 'started\n', stderr: '' });
  });

  it('serves several extractions at once, each with its own stream and digests', async () => {
    const layers = [0, 1, 2, 3].map((i) => {
      const tar = archive(...Array.from({ length: 50 }, (_, n) => file(`d${i}/f${n}`, Buffer.alloc(100_000 + n * 1000 + i, n + i))));
      const blob = compress(tar, i === 3 ? 'gzip' : 'zstd');
      return { tar, blob, mediaType: i === 3 ? MEDIA_TYPE.gzip : MEDIA_TYPE.zstd, target: join(work, `concurrent-${++seq}`) };
    });
    const results = await Promise.all(layers.map((l) => extractBuffer(l.blob, { mediaType: l.mediaType, expectedDigest: sha256(l.blob), expectedDiffId: sha256(l.tar), target: l.target })));
    results.forEach((r, i) => {
      expect(r.diffId).toBe(sha256(layers[i]!.tar));
      expect(r.entries).toBe(50);
      expect(readdirSync(join(layers[i]!.target, `d${i}`))).toHaveLength(50);
    });
  });
});

describe.skipIf(!isRoot)('real layers', () => {
  const blob = debianBlob();

  it.skipIf(!blob)('the Debian minbase layer extracts as GNU tar extracts it', async () => {
    const digest = `sha256:${blob!.split('/').pop()}` as Digest;
    const diffId = `sha256:${execFileSync('sh', ['-c', 'zstd -dc "$1" | sha256sum', 'sh', blob!], { encoding: 'utf8' }).split(' ')[0]}` as Digest;
    const target = join(work, `debian-${++seq}`);
    const result = await extractLayer(createReadStream(blob!, { highWaterMark: 1 << 20 }), { mediaType: MEDIA_TYPE.zstd, expectedDigest: digest, expectedDiffId: diffId, target });
    expect(result.diffId).toBe(diffId);
    expect(result.entries).toBeGreaterThan(5000);
    const byTar = join(work, `debian-tar-${seq}`);
    await mkdir(byTar);
    execFileSync('sh', ['-c', 'zstd -dc "$1" | tar -x --numeric-owner -p --xattrs --xattrs-include="*" -C "$2"', 'sh', blob!, byTar]);
    expect(listTree(target, 2 ** 40)).toEqual(listTree(byTar, 2 ** 40));
  });

  it('a SIGKILLed extraction leaves only a temp dir, which sweepStaleTemps removes', async () => {
    // A layer big enough to take a while: 3,000 files of 40 KiB in one directory.
    const parts = [];
    for (let i = 0; i < 3000; i++) {
      const data = Buffer.alloc(40 << 10, i % 251);
      data.write(`file ${i}\n`);
      parts.push(file(`files/${String(i).padStart(5, '0')}`, data));
    }
    const tar = archive(...parts);
    const blobFile = join(work, `big-${++seq}.zst`);
    const blobBytes = compress(tar, 'zstd');
    await writeFile(blobFile, blobBytes);
    const parent = join(work, `store-${seq}`);
    await mkdir(parent);
    const target = join(parent, 'layer');
    const child = spawn(process.execPath, [CHILD, blobFile, MEDIA_TYPE.zstd, sha256(blobBytes), target], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    // Wait until it is well into the files, then kill it.
    let killedAt = 0;
    for (let i = 0; i < 3000 && !killedAt; i++) {
      const temps = readdirSync(parent).filter((n) => n.startsWith('layer.tmp-'));
      const filesDir = temps[0] ? join(parent, temps[0], 'files') : undefined;
      const n = filesDir && existsSync(filesDir) ? readdirSync(filesDir).length : 0;
      if (n >= 300) {
        child.kill('SIGKILL');
        killedAt = n;
      } else await new Promise((r) => setTimeout(r, 5));
    }
    expect(killedAt, 'the child was killed mid-extraction').toBeGreaterThan(0);
    expect(await exited).toEqual({ code: null, signal: 'SIGKILL' });
    const left = readdirSync(parent);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(new RegExp(`^layer\\.tmp-${child.pid}-[0-9a-f]{12}$`));
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(join(parent, left[0]!, 'files')).length).toBeLessThan(3000);
    expect(await sweepStaleTemps(parent)).toEqual([join(parent, left[0]!)]);
    expect(readdirSync(parent)).toEqual([]);
    // And the same layer, not killed, extracts completely.
    const r = await extractLayer(createReadStream(blobFile), { mediaType: MEDIA_TYPE.zstd, expectedDigest: sha256(blobBytes), expectedDiffId: sha256(tar), target, durable: false });
    expect(r.entries).toBe(3000);
    expect(readdirSync(join(target, 'files'))).toHaveLength(3000);
  });

  /** Runs the child extraction on a fresh tmpfs of `options` in a private mount namespace. */
  async function extractOnTinyFs(tar: Buffer, options: string): Promise<Record<string, unknown> & { after: string[] }> {
    const blobBytes = compress(tar, 'zstd');
    const blobFile = join(work, `enospc-${++seq}.zst`);
    await writeFile(blobFile, blobBytes);
    const mnt = join(work, `tinyfs-${seq}`);
    await mkdir(mnt);
    const script = 'set -e; mount -t tmpfs -o "$1" vztpl-enospc "$2"; mkdir "$2/store"; shift 2; exec "$@"';
    const out = execFileSync('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', options, mnt, process.execPath, CHILD, blobFile, MEDIA_TYPE.zstd, sha256(blobBytes), join(mnt, 'store', 'layer')], {
      encoding: 'utf8',
    });
    // The tmpfs went away with the namespace; the mount point is empty again.
    expect(readdirSync(mnt)).toEqual([]);
    return JSON.parse(out) as Record<string, unknown> & { after: string[] };
  }

  it('a full filesystem fails with ENOSPC, names the entry, and leaves nothing half-made', async () => {
    const parts = [];
    for (let i = 0; i < 8; i++) parts.push(file(`data/chunk-${i}`, Buffer.alloc(1 << 20, i + 1)));
    const r = await extractOnTinyFs(archive(...parts), 'size=4m');
    expect(r).toMatchObject({ ok: false, name: ExtractIOError.name, kind: 'io', code: 'ENOSPC' });
    expect(r.entry).toMatch(/^data\/chunk-\d$/);
    expect(r.message).toMatch(/ENOSPC/);
    expect(r.message).toContain(r.entry as string);
    expect(r.after).toEqual([]);
    expect(r.freeAfter).toEqual(r.freeBefore);
  });

  it('running out of inodes fails the same way', async () => {
    const parts = [];
    for (let i = 0; i < 200; i++) parts.push(file(`many/f${i}`, 'x'));
    const r = await extractOnTinyFs(archive(...parts), 'size=16m,nr_inodes=64');
    expect(r).toMatchObject({ ok: false, name: ExtractIOError.name, kind: 'io', code: 'ENOSPC' });
    expect(r.entry).toMatch(/^many\/f\d+$/);
    expect(r.after).toEqual([]);
    expect(r.freeAfter).toEqual(r.freeBefore);
  });
});
