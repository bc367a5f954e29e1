// A read-only layer put on top of a step's stack for the duration of the step only: the
// mount points the template lacks, the host's resolv.conf (so apt and dnf can resolve the
// mirror), and the package manager's step files (for Debian, a policy-rc.d that stops package
// scripts from starting services).
// Being a lower layer it never reaches the step's upper dir, so it never reaches a template.
// Its directories copy the metadata of the stack's own, so a copy-up inside them is exact.
import { chmod, chown, lstat, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Stats } from 'node:fs';
import type { StepFile } from './managers/index.ts';

async function topmost(lowers: readonly string[], path: string): Promise<Stats | undefined> {
  for (const lower of lowers) {
    const st = await lstat(join(lower, path)).catch(() => undefined);
    if (st) return st;
  }
  return undefined;
}

/** Creates `path`'s parent directories in `dir`, each with the stack's metadata. */
async function mirrorParents(dir: string, lowers: readonly string[], path: string): Promise<boolean> {
  const parts = dirname(path).split('/').filter(Boolean);
  const chain: string[] = [];
  for (let i = 1; i <= parts.length; i++) chain.push(parts.slice(0, i).join('/'));
  for (const rel of chain) {
    const st = await topmost(lowers, rel);
    if (st && !st.isDirectory()) return false; // e.g. a symlinked /usr/sbin: leave it alone
    const abs = join(dir, rel);
    await mkdir(abs, { recursive: true });
    if (st) {
      await chmod(abs, st.mode & 0o7777);
      await chown(abs, st.uid, st.gid);
    }
  }
  return true;
}

async function restoreTimes(dir: string, lowers: readonly string[], paths: readonly string[]): Promise<void> {
  // Deepest first: creating a child updates its parent's mtime.
  const dirs = new Set<string>();
  for (const p of paths) for (let d = dirname(p); d !== '.' && d !== '/'; d = dirname(d)) dirs.add(d);
  for (const rel of [...dirs].sort((a, b) => b.length - a.length)) {
    const st = await topmost(lowers, rel);
    if (st?.isDirectory()) await utimes(join(dir, rel), st.atime, st.mtime).catch(() => undefined);
  }
}

/** `mountpoints`: absolute paths of directories the step mounts on, created here if missing. */
export async function makeInjectedLayer(dir: string, lowers: readonly string[], files: readonly StepFile[], mountpoints: readonly string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const mountpoint of ['/proc', '/sys', '/dev', ...mountpoints]) {
    const rel = mountpoint.replace(/^\/+/, '');
    const st = await topmost(lowers, rel);
    if (st) continue;
    if (!(await mirrorParents(dir, lowers, rel))) continue;
    await mkdir(join(dir, rel), { mode: 0o755 });
    written.push(rel);
  }
  const resolv = await topmost(lowers, 'etc/resolv.conf');
  if (!resolv?.isSymbolicLink() && (await mirrorParents(dir, lowers, 'etc/resolv.conf'))) {
    const hostResolv = await readFile('/etc/resolv.conf').catch(() => Buffer.from('nameserver 127.0.0.1\n'));
    await writeFile(join(dir, 'etc/resolv.conf'), hostResolv, { mode: 0o644 });
    written.push('etc/resolv.conf');
  }
  for (const file of files) {
    if (!(await mirrorParents(dir, lowers, file.path))) continue;
    await writeFile(join(dir, file.path), file.content, { mode: file.mode });
    written.push(file.path);
  }
  await restoreTimes(dir, lowers, written);
}
