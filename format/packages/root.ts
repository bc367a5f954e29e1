// Paths inside a template's root as the template's own processes see them.
import { lstat, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';

/** PATH inside a template (for programs run chrooted into it). */
export const TEMPLATE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Resolves an absolute path inside a root as the root's own processes would see it: symlinks
 * (absolute ones included) are followed relative to the root and never lead out of it.
 * Returns the host path, or undefined when the path does not exist.
 */
export async function resolveInRoot(root: string, path: string, depth = 0): Promise<string | undefined> {
  const parts = path.split('/').filter((p) => p && p !== '.');
  let cur = '/';
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '..') {
      cur = posix.dirname(cur);
      continue;
    }
    const next = posix.join(cur, part);
    let st;
    try {
      st = await lstat(join(root, next));
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      if (depth >= 40) return undefined;
      const target = await readlink(join(root, next));
      const base = target.startsWith('/') ? target : posix.join(cur, target);
      return resolveInRoot(root, posix.join(base, ...parts.slice(i + 1)), depth + 1);
    }
    cur = next;
  }
  return join(root, cur);
}
