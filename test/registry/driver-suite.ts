// The one test suite every StorageDriver passes, in the spirit of CNCF Distribution's
// registry/storage/driver/testsuites. Each test case gets a fresh, empty driver from `make`
// (a new directory, or a new key prefix of one bucket) and cleans it up afterwards.
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidOffsetError,
  InvalidPathError,
  PathNotFoundError,
  StorageUnavailableError,
  contentIfPresent,
  exists,
  type FileInfo,
  type StorageDriver,
} from '../../registry/storage/driver.ts';

export interface DriverFixture {
  driver: StorageDriver;
  cleanup(): Promise<void>;
}

/**
 * A driver whose storage cannot be used: `unreachable` when nothing answers at all (an S3
 * endpoint where no server listens: every call fails), else storage that refuses every change
 * (a file system tree that may be read but not written). `present` is a path that was there
 * before (on storage that refuses changes).
 */
export interface UnavailableFixture extends DriverFixture {
  unreachable: boolean;
  present: string;
}

export interface DriverSuiteOptions {
  /** Storage that cannot be used; undefined (the case is skipped) where the machine cannot make it. */
  unavailable?: () => Promise<UnavailableFixture | undefined>;
}

/** Each driver call that cannot reach or change its storage fails with the contract's error, within this. */
const UNAVAILABLE_WITHIN_MS = 15_000;

const MiB = 1024 * 1024;

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Asserts two buffers are equal without printing megabytes on failure. */
export function expectSameBytes(actual: Buffer, expected: Buffer): void {
  expect(actual.length).toBe(expected.length);
  expect(sha256(actual)).toBe(sha256(expected));
}

async function notFound(p: Promise<unknown>): Promise<void> {
  await expect(p).rejects.toBeInstanceOf(PathNotFoundError);
}

async function walkAll(driver: StorageDriver, path: string): Promise<FileInfo[]> {
  const seen: FileInfo[] = [];
  await driver.walk(path, (fi) => {
    seen.push(fi);
  });
  return seen.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export function driverSuite(name: string, make: () => Promise<DriverFixture>, opts: DriverSuiteOptions = {}): void {
  describe(`storage driver suite: ${name}`, () => {
    let fx: DriverFixture;
    let d: StorageDriver;
    beforeEach(async () => {
      fx = await make();
      d = fx.driver;
    });
    afterEach(async () => {
      await fx?.cleanup();
    });

    it('round-trips empty, small and 10 MiB binary content', async () => {
      const cases: [string, Buffer][] = [
        ['/rt/empty', Buffer.alloc(0)],
        ['/rt/small', Buffer.from('hello, storage\n')],
        ['/rt/big.bin', randomBytes(10 * MiB)],
      ];
      for (const [p, content] of cases) {
        expect(await d.putContent(p, content)).toBe(true);
        expectSameBytes(await d.getContent(p), content);
        const st = await d.stat(p);
        expect(st).toMatchObject({ path: p, size: content.length, isDir: false });
        expectSameBytes(await readAll(await d.reader(p)), content);
      }
      await notFound(d.getContent('/rt/missing'));
    });

    it('overwrites existing content', async () => {
      await d.putContent('/ow/file', Buffer.from('first version, longer'));
      await d.putContent('/ow/file', Buffer.from('second'));
      expect((await d.getContent('/ow/file')).toString()).toBe('second');
      expect((await d.stat('/ow/file')).size).toBe(6);
      // a writer replaces too
      const w = await d.writer('/ow/file');
      await w.write(Buffer.from('third'));
      await w.commit();
      expect((await d.getContent('/ow/file')).toString()).toBe('third');
    });

    it('ifNotExists: creates once; one winner among 8 concurrent writers; existing content unchanged', async () => {
      expect(await d.putContent('/ine/new', Buffer.from('a'), { ifNotExists: true })).toBe(true);
      expect(await d.putContent('/ine/new', Buffer.from('b'), { ifNotExists: true })).toBe(false);
      expect((await d.getContent('/ine/new')).toString()).toBe('a');

      for (let round = 0; round < 3; round++) {
        const p = `/ine/race-${round}`;
        const contents = Array.from({ length: 8 }, (_, i) => Buffer.from(`writer ${i} of round ${round}`));
        const results = await Promise.all(contents.map((c) => d.putContent(p, c, { ifNotExists: true })));
        expect(results.filter(Boolean)).toHaveLength(1);
        const winner = results.indexOf(true);
        expect((await d.getContent(p)).toString()).toBe(`writer ${winner} of round ${round}`);
      }
      // plain putContent still overwrites
      await d.putContent('/ine/new', Buffer.from('c'));
      expect((await d.getContent('/ine/new')).toString()).toBe('c');
    });

    it('writer: many small writes, size tracking', async () => {
      const w = await d.writer('/w/small-writes');
      expect(w.size).toBe(0);
      const parts: Buffer[] = [];
      let total = 0;
      for (let i = 0; i < 1000; i++) {
        const chunk = randomBytes((i * 7919) % 3001);
        parts.push(chunk);
        total += chunk.length;
        await w.write(chunk);
        expect(w.size).toBe(total);
      }
      await w.commit();
      expectSameBytes(await d.getContent('/w/small-writes'), Buffer.concat(parts));
      expect((await d.stat('/w/small-writes')).size).toBe(total);
      await expect(w.write(Buffer.from('x'))).rejects.toThrow();
    });

    it('writer: several buffers in one write land in order, across a part boundary too', async () => {
      const w = await d.writer('/w/vector');
      const pieces = [randomBytes(10), Buffer.alloc(0), randomBytes(65_536), randomBytes(3)];
      await w.write(pieces);
      await w.write(randomBytes(0));
      const big = Array.from({ length: 20 }, () => randomBytes(1 << 20)); // 20 MiB: past a 16 MiB multipart part
      await w.write(big);
      const total = [...pieces, ...big].reduce((n, b) => n + b.length, 0);
      expect(w.size).toBe(total);
      await w.commit();
      expectSameBytes(await d.getContent('/w/vector'), Buffer.concat([...pieces, ...big]));
    });

    it('writer: the writer copies what it is given (callers may reuse buffers)', async () => {
      const w = await d.writer('/w/reuse');
      const buf = Buffer.alloc(4096);
      const expected: Buffer[] = [];
      for (let i = 0; i < 50; i++) {
        buf.fill(i);
        expected.push(Buffer.from(buf));
        await w.write(buf);
      }
      await w.commit();
      expectSameBytes(await d.getContent('/w/reuse'), Buffer.concat(expected));
    });

    it('writer: 40 MiB crossing multipart parts, in one write and in odd chunks; ranged reads across parts', async () => {
      const content = randomBytes(40 * MiB);
      const w1 = await d.writer('/w/big-one');
      await w1.write(content);
      expect(w1.size).toBe(content.length);
      await w1.commit();
      expectSameBytes(await d.getContent('/w/big-one'), content);

      const w2 = await d.writer('/w/big-odd');
      const step = 3 * MiB + 1;
      for (let off = 0; off < content.length; off += step) await w2.write(content.subarray(off, off + step));
      expect(w2.size).toBe(content.length);
      await w2.commit();
      expect((await d.stat('/w/big-odd')).size).toBe(content.length);
      expectSameBytes(await readAll(await d.reader('/w/big-odd')), content);
      // a range over the 16 MiB and 5 MiB part boundaries
      for (const [off, len] of [
        [16 * MiB - 100, 200],
        [5 * MiB - 1, 2 * MiB],
        [40 * MiB - 10, 10],
      ] as const) {
        expectSameBytes(await readAll(await d.reader('/w/big-odd', off, len)), content.subarray(off, off + len));
      }
    });

    it('cancel leaves nothing (also after parts were uploaded), and the path keeps its old content', async () => {
      const w = await d.writer('/c/dir/new');
      await w.write(randomBytes(1000));
      await w.cancel();
      await notFound(d.stat('/c/dir/new'));
      await notFound(d.stat('/c'));
      await notFound(d.list('/c'));
      expect(await d.list('/')).toEqual([]);

      const big = await d.writer('/c/dir/new');
      await big.write(randomBytes(21 * MiB));
      await big.cancel();
      await big.cancel(); // twice is fine
      await notFound(d.stat('/c/dir/new'));
      await expect(big.write(Buffer.from('x'))).rejects.toThrow();
      await expect(big.commit()).rejects.toThrow();

      await d.putContent('/c/old', Buffer.from('old'));
      const w3 = await d.writer('/c/old');
      await w3.write(Buffer.from('new content'));
      await w3.cancel();
      expect((await d.getContent('/c/old')).toString()).toBe('old');
      expect(await d.list('/c')).toEqual(['/c/old']);
    });

    it('nothing is visible before commit', async () => {
      const w = await d.writer('/v/sub/file');
      await w.write(randomBytes(1000));
      await w.write(randomBytes(20 * MiB)); // past one part
      await notFound(d.stat('/v/sub/file'));
      await notFound(d.getContent('/v/sub/file'));
      await notFound(d.reader('/v/sub/file'));
      await notFound(d.list('/v'));
      await notFound(d.walk('/v', () => {}));
      expect(await d.list('/')).toEqual([]);
      expect(await walkAll(d, '/')).toEqual([]);

      await d.putContent('/v/old', Buffer.from('old'));
      const w2 = await d.writer('/v/old');
      await w2.write(Buffer.from('replacement'));
      expect((await d.getContent('/v/old')).toString()).toBe('old');

      await w.commit();
      expect((await d.stat('/v/sub/file')).size).toBe(1000 + 20 * MiB);
      await w2.commit();
      expect((await d.getContent('/v/old')).toString()).toBe('replacement');
    });

    it('reader: offsets and lengths', async () => {
      const content = randomBytes(100_000);
      await d.putContent('/r/f', content);
      const read = async (o?: number, l?: number) => readAll(await d.reader('/r/f', o, l));
      expectSameBytes(await read(), content);
      expectSameBytes(await read(0), content);
      expectSameBytes(await read(12_345), content.subarray(12_345));
      expectSameBytes(await read(12_345, 1000), content.subarray(12_345, 13_345));
      expectSameBytes(await read(0, 1), content.subarray(0, 1));
      expectSameBytes(await read(99_999), content.subarray(99_999));
      expectSameBytes(await read(90_000, 50_000), content.subarray(90_000)); // length past the end: to the end
      expect((await read(100_000)).length).toBe(0); // exactly at the end: empty
      expect((await read(100_000, 10)).length).toBe(0);
      expect((await read(500, 0)).length).toBe(0);
      await expect(d.reader('/r/f', 100_001)).rejects.toBeInstanceOf(InvalidOffsetError);
      await expect(d.reader('/r/f', 200_000, 5)).rejects.toBeInstanceOf(InvalidOffsetError);
      await expect(d.reader('/r/f', -1)).rejects.toBeInstanceOf(InvalidOffsetError);
      await notFound(d.reader('/r/missing'));
      await notFound(d.reader('/r/missing', 10, 10));
      await notFound(d.reader('/r')); // a directory is not readable

      await d.putContent('/r/empty', Buffer.alloc(0));
      expect((await readAll(await d.reader('/r/empty'))).length).toBe(0);
      expect((await readAll(await d.reader('/r/empty', 0))).length).toBe(0);
      await expect(d.reader('/r/empty', 1)).rejects.toBeInstanceOf(InvalidOffsetError);
    });

    it('stat: files, directories, the root, missing paths', async () => {
      const before = Date.now();
      await d.putContent('/s/dir/sub/file', Buffer.from('12345'));
      const f = await d.stat('/s/dir/sub/file');
      expect(f).toMatchObject({ path: '/s/dir/sub/file', size: 5, isDir: false });
      expect(f.modTime).toBeInstanceOf(Date);
      expect(Math.abs(f.modTime.getTime() - before)).toBeLessThan(120_000);
      for (const dir of ['/s', '/s/dir', '/s/dir/sub']) {
        expect(await d.stat(dir)).toMatchObject({ path: dir, isDir: true });
      }
      expect((await d.stat('/')).isDir).toBe(true);
      await notFound(d.stat('/s/dir/sub/file/below'));
      await notFound(d.stat('/s/dir/su')); // a name prefix is not a directory
      await notFound(d.stat('/s/dir/sub/fil'));
      await notFound(d.stat('/nothing'));
      // The contract's helpers over stat and getContent: absent is an answer, not an error.
      expect(await exists(d, '/s/dir/sub/file')).toBe(true);
      expect(await exists(d, '/s/dir')).toBe(true);
      expect(await exists(d, '/s/dir/su')).toBe(false);
      expect((await contentIfPresent(d, '/s/dir/sub/file'))?.toString()).toBe('12345');
      expect(await contentIfPresent(d, '/s/dir/sub/fil')).toBeUndefined();
    });

    it('list: sorted direct children, nested dirs, the root, missing dirs', async () => {
      const files = ['/l/b', '/l/a/x', '/l/a/y/z', '/l/c.txt', '/l/a-b', '/l/_u', '/l/Z', '/other/q'];
      for (const f of files) await d.putContent(f, Buffer.from(f));
      expect(await d.list('/l')).toEqual(['/l/Z', '/l/_u', '/l/a', '/l/a-b', '/l/b', '/l/c.txt']);
      expect(await d.list('/l/a')).toEqual(['/l/a/x', '/l/a/y']);
      expect(await d.list('/l/a/y')).toEqual(['/l/a/y/z']);
      expect(await d.list('/')).toEqual(['/l', '/other']);
      await notFound(d.list('/l/missing'));
      await notFound(d.list('/l/b')); // a file is not a directory
      await notFound(d.list('/l/a-')); // nor a name prefix

      // many entries (pagination on S3: more than one page of 1000)
      const many = Array.from({ length: 1100 }, (_, i) => `/m/f${String(i).padStart(4, '0')}`);
      for (let i = 0; i < many.length; i += 50) {
        await Promise.all(many.slice(i, i + 50).map((p) => d.putContent(p, Buffer.from('x'))));
      }
      await d.putContent('/m/sub/inner', Buffer.from('y'));
      expect(await d.list('/m')).toEqual([...many, '/m/sub']);
    });

    it('move: into new dirs, replacing an existing file, missing source', async () => {
      const content = randomBytes(3 * MiB);
      await d.putContent('/mv/src', content);
      await d.move('/mv/src', '/mv/new/deep/dest');
      await notFound(d.stat('/mv/src'));
      expectSameBytes(await d.getContent('/mv/new/deep/dest'), content);

      await d.putContent('/mv/other', Buffer.from('replaced'));
      await d.move('/mv/other', '/mv/new/deep/dest');
      expect((await d.getContent('/mv/new/deep/dest')).toString()).toBe('replaced');
      await notFound(d.stat('/mv/other'));
      expect(await d.list('/mv')).toEqual(['/mv/new']);

      await notFound(d.move('/mv/nothing', '/mv/x'));
      await notFound(d.stat('/mv/x'));
      // the source's emptied directory is gone, as on S3
      await d.putContent('/mv2/a/only', Buffer.from('1'));
      await d.move('/mv2/a/only', '/mv2/b/only');
      expect(await d.list('/mv2')).toEqual(['/mv2/b']);
    });

    it('delete: a file, a tree; siblings sharing a name prefix stay', async () => {
      for (const f of ['/del/tree/a', '/del/tree/sub/b', '/del/tree/sub/deeper/c', '/del/tree-sibling', '/del/treex/d', '/del/keep', '/del/tre']) {
        await d.putContent(f, Buffer.from(f));
      }
      await d.delete('/del/keep');
      await notFound(d.stat('/del/keep'));
      await notFound(d.getContent('/del/keep'));
      expect(await d.list('/del')).toEqual(['/del/tre', '/del/tree', '/del/tree-sibling', '/del/treex']);

      await d.delete('/del/tree');
      await notFound(d.stat('/del/tree'));
      await notFound(d.stat('/del/tree/sub/deeper/c'));
      await notFound(d.list('/del/tree'));
      expect(await d.list('/del')).toEqual(['/del/tre', '/del/tree-sibling', '/del/treex']);
      expect((await d.getContent('/del/treex/d')).toString()).toBe('/del/treex/d');

      await notFound(d.delete('/del/tree'));
      await notFound(d.delete('/del/nothing'));

      // deleting the last file of a directory removes the directory
      await d.delete('/del/treex/d');
      await notFound(d.stat('/del/treex'));
      expect(await d.list('/del')).toEqual(['/del/tre', '/del/tree-sibling']);
    });

    it('walk: every file, no directories', async () => {
      const files = ['/wk/a', '/wk/b/c', '/wk/b/d/e', '/wk/b/d/f', '/wk/g.h', '/wk2/x'];
      for (const f of files) await d.putContent(f, Buffer.from(f));
      const seen = await walkAll(d, '/wk');
      expect(seen.map((s) => s.path)).toEqual(['/wk/a', '/wk/b/c', '/wk/b/d/e', '/wk/b/d/f', '/wk/g.h']);
      for (const s of seen) {
        expect(s.isDir).toBe(false);
        expect(s.size).toBe(s.path.length);
        expect(s.modTime).toBeInstanceOf(Date);
      }
      expect((await walkAll(d, '/wk/b/d')).map((s) => s.path)).toEqual(['/wk/b/d/e', '/wk/b/d/f']);
      expect((await walkAll(d, '/')).map((s) => s.path)).toEqual([...files].sort());
      await notFound(d.walk('/wk/none', () => {}));
      await expect(
        d.walk('/wk', () => {
          throw new Error('stop here');
        }),
      ).rejects.toThrow('stop here');
    });

    it('rejects invalid paths everywhere', async () => {
      const bad = ['', 'relative', 'rel/ative', '/a/../b', '/..', '/a/./b', '//a', '/a//b', '/a/', '/a b', '/a\nb', '/a\\b', '/ü', '/a?b', '/a/b%2f'];
      for (const p of bad) {
        await expect(d.getContent(p), p).rejects.toBeInstanceOf(InvalidPathError);
        await expect(d.putContent(p, Buffer.from('x')), p).rejects.toBeInstanceOf(InvalidPathError);
        await expect(d.reader(p), p).rejects.toBeInstanceOf(InvalidPathError);
        await expect(d.writer(p), p).rejects.toBeInstanceOf(InvalidPathError);
        await expect(d.stat(p), p).rejects.toBeInstanceOf(InvalidPathError);
        await expect(d.list(p), p).rejects.toBeInstanceOf(InvalidPathError);
        await expect(d.delete(p), p).rejects.toBeInstanceOf(InvalidPathError);
        await expect(d.move(p, '/ok'), p).rejects.toBeInstanceOf(InvalidPathError);
        await expect(d.move('/ok', p), p).rejects.toBeInstanceOf(InvalidPathError);
        await expect(d.redirectURL(p, { method: 'GET' }), p).rejects.toBeInstanceOf(InvalidPathError);
        await expect(d.walk(p, () => {}), p).rejects.toBeInstanceOf(InvalidPathError);
      }
      // the root is a directory, not an object
      await expect(d.putContent('/', Buffer.from('x'))).rejects.toBeInstanceOf(InvalidPathError);
      await expect(d.delete('/')).rejects.toBeInstanceOf(InvalidPathError);
      await expect(d.writer('/')).rejects.toBeInstanceOf(InvalidPathError);
      expect(await d.list('/')).toEqual([]);
    });

    it('concurrent writers to different paths', async () => {
      const contents = Array.from({ length: 12 }, (_, i) => randomBytes(i % 3 === 0 ? 6 * MiB : 200_000 + i));
      await Promise.all(
        contents.map(async (c, i) => {
          const w = await d.writer(`/cc/dir${i % 3}/file${i}`);
          for (let off = 0; off < c.length; off += 65_536) await w.write(c.subarray(off, off + 65_536));
          await w.commit();
        }),
      );
      for (let i = 0; i < contents.length; i++) {
        expectSameBytes(await d.getContent(`/cc/dir${i % 3}/file${i}`), contents[i] as Buffer);
      }
      expect(await d.list('/cc')).toEqual(['/cc/dir0', '/cc/dir1', '/cc/dir2']);
      expect(await walkAll(d, '/cc')).toHaveLength(12);
    });

    it('odd but valid names: dots, dashes, underscores', async () => {
      const names = ['/odd/.hidden', '/odd/..double', '/odd/trailing.', '/odd/-dash', '/odd/_under_', '/odd/a.b.c', '/odd/...', '/odd/sha256_ab-cd.ef/data', '/odd/.d/.e'];
      for (const n of names) await d.putContent(n, Buffer.from(n));
      for (const n of names) expect((await d.getContent(n)).toString()).toBe(n);
      expect(await d.list('/odd')).toEqual(['/odd/-dash', '/odd/...', '/odd/..double', '/odd/.d', '/odd/.hidden', '/odd/_under_', '/odd/a.b.c', '/odd/sha256_ab-cd.ef', '/odd/trailing.']);
      await d.move('/odd/.hidden', '/odd/.d/.moved');
      expect(await d.list('/odd/.d')).toEqual(['/odd/.d/.e', '/odd/.d/.moved']);
      await d.delete('/odd/.d');
      await notFound(d.stat('/odd/.d/.e'));
      expect((await walkAll(d, '/odd')).length).toBe(names.length - 2);
    });

    it('storage that cannot be used: every call that needs it fails with StorageUnavailableError, promptly', async (ctx) => {
      const fx = opts.unavailable ? await opts.unavailable() : undefined;
      if (!fx) return ctx.skip();
      const u = fx.driver;
      try {
        const calls: Array<[string, () => Promise<unknown>]> = [
          ['putContent', () => u.putContent('/unavailable/new', Buffer.from('x'))],
          ['putContent ifNotExists', () => u.putContent('/unavailable/once', Buffer.from('x'), { ifNotExists: true })],
          [
            'writer',
            async () => {
              const w = await u.writer('/unavailable/written');
              await w.write(randomBytes(1000));
              await w.commit();
            },
          ],
          ['move', () => u.move(fx.present, '/unavailable/moved')],
          ['delete', () => u.delete(fx.present)],
        ];
        if (fx.unreachable) {
          calls.push(
            ['getContent', () => u.getContent(fx.present)],
            ['reader', () => u.reader(fx.present)],
            ['stat', () => u.stat(fx.present)],
            ['list', () => u.list('/')],
            ['walk', () => u.walk('/', () => {})],
            ['abortStaleUploads', () => u.abortStaleUploads(new Date())],
          );
        }
        for (const [what, call] of calls) {
          const t0 = Date.now();
          const err = await call().then(
            () => new Error(`${what} succeeded`),
            (e: unknown) => e,
          );
          const elapsed = Date.now() - t0;
          expect(err, what).toBeInstanceOf(StorageUnavailableError);
          expect((err as StorageUnavailableError).code, what).toMatch(/^[A-Za-z]+$/);
          expect(elapsed, what).toBeLessThan(UNAVAILABLE_WITHIN_MS);
        }
      } finally {
        await fx.cleanup();
      }
    });

    it('abortStaleUploads leaves writers in progress alone', async () => {
      const w = await d.writer('/stale/in-progress');
      await w.write(randomBytes(6 * MiB));
      expect(await d.abortStaleUploads(new Date(Date.now() - 3_600_000))).toBe(0);
      await w.write(Buffer.from('more'));
      await w.commit();
      expect((await d.stat('/stale/in-progress')).size).toBe(6 * MiB + 4);
    });
  });
}
