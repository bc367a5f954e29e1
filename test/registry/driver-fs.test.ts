// The shared driver suite against the fs driver, plus what only a file system shows: temp files
// out of sight, confinement to the root, stale temp files removed.
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsDriver } from '../../registry/storage/fs.ts';
import { driverSuite } from './driver-suite.ts';

async function makeFs() {
  const root = await mkdtemp(join(tmpdir(), 'vztpl-fsdriver-'));
  return { root, driver: new FsDriver({ root }), cleanup: () => rm(root, { recursive: true, force: true }) };
}

/**
 * A store that refuses every change: its tree made read-only for this user (EACCES), or for root,
 * whom permissions do not stop, immutable (chattr +i: EPERM). Undefined where neither works.
 */
async function makeUnwritableFs() {
  const { root, driver, cleanup } = await makeFs();
  const present = '/unavailable/present';
  await driver.putContent(present, Buffer.from('here before'));
  const dirs = [root, join(root, '.~tmp'), join(root, 'unavailable')];
  const asRoot = process.getuid?.() === 0;
  const chattr = (flag: string) => spawnSync('chattr', [flag, ...dirs], { encoding: 'utf8' });
  if (asRoot) {
    if (chattr('+i').status !== 0) {
      await cleanup();
      return undefined;
    }
  } else {
    for (const d of dirs) await chmod(d, 0o555);
  }
  return {
    driver,
    present,
    unreachable: false,
    cleanup: async () => {
      if (asRoot) chattr('-i');
      else for (const d of dirs) await chmod(d, 0o755);
      await cleanup();
    },
  };
}

driverSuite('fs', makeFs, { unavailable: makeUnwritableFs });

describe('fs driver specifics', () => {
  it('keeps temp files in one hidden directory and leaves none behind', async () => {
    const { root, driver, cleanup } = await makeFs();
    try {
      const w = await driver.writer('/a/b');
      await w.write(Buffer.from('x'));
      expect(await readdir(root)).toEqual(['.~tmp']); // no /a before commit
      expect((await readdir(join(root, '.~tmp'))).length).toBe(1);
      await w.commit();
      await driver.putContent('/a/c', Buffer.from('y'), { ifNotExists: true });
      await driver.putContent('/a/c', Buffer.from('z'), { ifNotExists: true });
      await driver.delete('/a');
      expect(await readdir(join(root, '.~tmp'))).toEqual([]);
      expect(await driver.list('/')).toEqual([]);
    } finally {
      await cleanup();
    }
  });

  it('getContent answers from memory only while the file is the same: another instance\'s write, an in-place write, a delete', async () => {
    const { root, driver, cleanup } = await makeFs();
    try {
      const other = new FsDriver({ root }); // a second registry process on the same directory
      const link = '/repo/_manifests/tags/latest/current/link';
      await driver.putContent(link, Buffer.from(`sha256:${'a'.repeat(64)}`));
      expect((await driver.getContent(link)).toString()).toBe(`sha256:${'a'.repeat(64)}`);
      expect((await driver.getContent(link)).toString()).toBe(`sha256:${'a'.repeat(64)}`); // now from memory
      // The same size, through the other instance (a new file renamed over the old one).
      await other.putContent(link, Buffer.from(`sha256:${'b'.repeat(64)}`));
      expect((await driver.getContent(link)).toString()).toBe(`sha256:${'b'.repeat(64)}`);
      // The same size, written in place by someone else (same inode), even with the old mtime.
      const before = await stat(join(root, link));
      await writeFile(join(root, link), `sha256:${'c'.repeat(64)}`);
      await utimes(join(root, link), before.atime, before.mtime);
      expect((await driver.getContent(link)).toString()).toBe(`sha256:${'c'.repeat(64)}`);
      await other.delete('/repo/_manifests/tags/latest');
      await expect(driver.getContent(link)).rejects.toThrow(/path not found/);
      // A directory is not content.
      await driver.putContent('/repo/x/y', Buffer.from('z'));
      await expect(driver.getContent('/repo/x')).rejects.toThrow(/path not found/);
    } finally {
      await cleanup();
    }
  });

  it('stays inside its root', async () => {
    const { root, driver, cleanup } = await makeFs();
    try {
      await driver.putContent('/x', Buffer.from('in'));
      expect((await stat(join(root, 'x'))).size).toBe(2);
      await expect(driver.getContent('/../etc/passwd')).rejects.toThrow(/invalid storage path/);
    } finally {
      await cleanup();
    }
  });

  it('abortStaleUploads removes temp files older than the cutoff only, and only names of its own kind', async () => {
    const { root, driver, cleanup } = await makeFs();
    try {
      await driver.putContent('/warm', Buffer.from('up')); // creates the temp dir
      const old = join(root, '.~tmp', '1700000000000-0123456789abcdef'); // a temp name of before the owner tag
      await writeFile(old, 'partial');
      const past = new Date(Date.now() - 2 * 3_600_000);
      await utimes(old, past, past);
      const foreign = join(root, '.~tmp', 'crashed-writer');
      await writeFile(foreign, 'not ours');
      await utimes(foreign, past, past);
      const w = await driver.writer('/live');
      await w.write(Buffer.from('live'));
      expect(await driver.abortStaleUploads(new Date(Date.now() - 3_600_000))).toBe(1);
      expect(await readdir(join(root, '.~tmp'))).toContain('crashed-writer');
      await w.commit();
      expect((await driver.getContent('/live')).toString()).toBe('live');
    } finally {
      await cleanup();
    }
  });
});
