// compressedFileSink (format/compress.ts): gzip and zstd written as independent members/frames
// compressed in parallel. Checked with the programs hosts use on an exported template: gzip -t,
// zcat and GNU tar -xz (zstd -t, zstd -dc, tar --zstd for zstd), and for reproducibility: the
// same bytes written in writes of any size give the same file.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { compressedFileSink, type ArchiveFormat } from '../../format/compress.ts';
import { FRAME_SIZE } from '../../format/frames.ts';

let dir: string;
let tree: string;
let tarBytes: Buffer;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vztpl-sink-test-'));
  tree = join(dir, 'tree');
  await mkdir(join(tree, 'etc'), { recursive: true });
  await mkdir(join(tree, 'usr/lib'), { recursive: true });
  // Spans three frames, compressible but not trivially.
  const big = Buffer.alloc(2 * FRAME_SIZE + 4321);
  let x = 7;
  for (let i = 0; i < big.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    big[i] = i % 4 ? 0x61 + (x >>> 28) : x >>> 24;
  }
  await writeFile(join(tree, 'usr/lib/big.bin'), big);
  for (let i = 0; i < 50; i++) await writeFile(join(tree, 'etc', `f${i}`), `line ${i}\n`.repeat(i));
  tarBytes = execFileSync('tar', ['--sort=name', '--numeric-owner', '-C', tree, '-cf', '-', '.'], { maxBuffer: 64 << 20 });
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function sinkFile(format: ArchiveFormat, writeSize: number): Promise<string> {
  const file = join(dir, `${format}-${writeSize}`);
  const sink = await compressedFileSink(file, format);
  for (let i = 0; i < tarBytes.length; i += writeSize) await sink.write(tarBytes.subarray(i, i + writeSize));
  await sink.close();
  return file;
}

/** Offsets where a gzip member as zlib writes it begins (magic, deflate, no flags, zero mtime). */
function gzipMembers(data: Buffer): number[] {
  const head = Buffer.from('1f8b08000000000000', 'hex');
  const at: number[] = [];
  for (let i = data.indexOf(head); i !== -1; i = data.indexOf(head, i + 1)) at.push(i);
  return at;
}

const cases = [
  { format: 'gzip', test: ['gzip', '-t'], cat: ['zcat'], tarFlag: '-z' },
  { format: 'zstd', test: ['zstd', '-q', '-t'], cat: ['zstd', '-q', '-dc'], tarFlag: '--zstd' },
] as const;

describe.each(cases)('compressedFileSink $format', ({ format, test, cat, tarFlag }) => {
  it.skipIf(!findProgram(test[0]))('is one valid stream of several frames that the tools read back whole', async () => {
    const file = await sinkFile(format, 1 << 20);
    const data = await readFile(file);
    if (format === 'gzip') expect(gzipMembers(data).length).toBeGreaterThanOrEqual(3);
    execFileSync(test[0], [...test.slice(1), file]);
    const [prog, ...args] = cat;
    expect(execFileSync(prog, [...args, file], { maxBuffer: 64 << 20 }).equals(tarBytes)).toBe(true);
    const out = join(dir, `x-${format}`);
    await mkdir(out);
    execFileSync('tar', ['--numeric-owner', tarFlag, '-xf', file, '-C', out]);
    execFileSync('diff', ['-r', '--no-dereference', tree, out]);
  });

  it('gives the same bytes whatever the sizes of the writes', async () => {
    const a = await readFile(await sinkFile(format, 4099));
    const b = await readFile(await sinkFile(format, 3 << 20));
    const c = await readFile(await sinkFile(format, tarBytes.length));
    expect(b.equals(a)).toBe(true);
    expect(c.equals(a)).toBe(true);
  });
});
