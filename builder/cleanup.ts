// Removes per-machine and per-build state from a layer's tree, so that a template carries no
// host's identity and two builds of the same recipe give the same bytes. Works on a whole root
// (the bootstrap layer) or on a step's overlayfs upper dir, where a cleaned path that a lower
// layer also has is simply dropped from the upper dir: the lower copy is already clean.
import { lstat, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CleanupPolicy } from './recipe/schema.ts';

type Action = 'remove' | 'truncate';

interface Rule {
  /** Absolute path in the template; '*' and '?' allowed in the last component. */
  path: string;
  action: Action;
  /** Names to keep when the last component is a glob. */
  except?: string[];
}

const DEFAULT_RULES: Rule[] = [
  { path: '/etc/machine-id', action: 'truncate' },
  { path: '/var/lib/dbus/machine-id', action: 'remove' },
  { path: '/etc/ssh/ssh_host_*', action: 'remove' },
  { path: '/var/lib/systemd/random-seed', action: 'remove' },
  { path: '/var/lib/urandom/random-seed', action: 'remove' },
  { path: '/var/cache/ldconfig/aux-cache', action: 'remove' },
  { path: '/var/lib/apt/lists/*', action: 'remove', except: ['partial', 'lock', 'auxfiles'] },
  { path: '/var/cache/apt/archives/*', action: 'remove', except: ['partial', 'lock'] },
  { path: '/var/cache/apt/*.bin', action: 'remove' },
  { path: '/var/cache/debconf/*-old', action: 'remove' },
  { path: '/var/lib/dpkg/*-old', action: 'remove' },
  { path: '/var/cache/dnf/*', action: 'remove' },
  { path: '/var/cache/yum/*', action: 'remove' },
  { path: '/var/lib/dnf/history*', action: 'remove' },
  { path: '/var/lib/rpm/__db.*', action: 'remove' },
  { path: '/var/log/*.gz', action: 'remove' },
  { path: '/var/log/*.xz', action: 'remove' },
  { path: '/var/log/*.old', action: 'remove' },
  { path: '/var/log/apt/eipp.log.xz', action: 'remove' },
  { path: '/var/log/*', action: 'truncate' },
  { path: '/var/log/apt/*', action: 'truncate' },
  { path: '/var/log/installer', action: 'remove' },
  { path: '/tmp/*', action: 'remove' },
  { path: '/var/tmp/*', action: 'remove' },
  { path: '/root/.bash_history', action: 'remove' },
  { path: '/root/.cache', action: 'remove' },
  { path: '/root/.rpmdb', action: 'remove' },
];

/** Only the first layer: the runtime provides /dev, /run and the host's identity. */
const ROOTFS_RULES: Rule[] = [
  { path: '/dev/*', action: 'remove' },
  { path: '/run/*', action: 'remove' },
  { path: '/proc/*', action: 'remove' },
  { path: '/sys/*', action: 'remove' },
];

export function cleanupRules(policy: CleanupPolicy, kind: 'rootfs' | 'upper'): Rule[] {
  const rules = policy.defaults ? DEFAULT_RULES.filter((r) => !policy.keep.includes(r.path)) : [];
  const extra = policy.paths.map((path): Rule => ({ path, action: 'remove' }));
  return [...(kind === 'rootfs' ? ROOTFS_RULES : []), ...rules, ...extra];
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function listMatches(dir: string, rule: Rule): Promise<string[]> {
  const slash = rule.path.lastIndexOf('/');
  const parent = rule.path.slice(0, slash);
  const pattern = rule.path.slice(slash + 1);
  if (!/[*?]/.test(pattern)) return (await exists(join(dir, rule.path))) ? [rule.path] : [];
  const names = await readdir(join(dir, parent)).catch(() => [] as string[]);
  const re = globToRegExp(pattern);
  return names.filter((n) => re.test(n) && !rule.except?.includes(n)).map((n) => `${parent}/${n}`);
}

export interface CleanupTarget {
  /** The tree to clean: a whole root, or an overlayfs upper dir. */
  dir: string;
  kind: 'rootfs' | 'upper';
  /** For an upper dir: the lower layers' trees, used to tell new files from changed ones. */
  lowers?: readonly string[];
}

export async function cleanTree(target: CleanupTarget, policy: CleanupPolicy): Promise<string[]> {
  const cleaned: string[] = [];
  const inLower = async (path: string) => {
    for (const lower of target.lowers ?? []) if (await exists(join(lower, path))) return true;
    return false;
  };
  for (const rule of cleanupRules(policy, target.kind)) {
    for (const path of await listMatches(target.dir, rule)) {
      const abs = join(target.dir, path);
      const st = await lstat(abs);
      // A whiteout records that the step deleted something: that is content, not state.
      if (target.kind === 'upper' && st.isCharacterDevice() && st.rdev === 0) continue;
      if (rule.action === 'truncate' && !st.isFile()) continue;
      if (rule.action === 'remove' || (target.kind === 'upper' && (await inLower(path)))) {
        await rm(abs, { recursive: true, force: true });
      } else if (st.size > 0) {
        await truncate(abs, 0);
      } else {
        continue;
      }
      cleaned.push(path);
    }
  }
  if (target.kind === 'upper') cleaned.push(...(await dropSqliteSidecars(target)));
  if (target.kind === 'rootfs') {
    // Set by the runtime when a container is created; the build host's must not leak in.
    await resetFile(join(target.dir, 'etc/hostname'), 'localhost\n');
    await resetFile(join(target.dir, 'etc/resolv.conf'), '');
  }
  return cleaned;
}

/**
 * Reading the rpmdb (the package lock query after every step) rewrites sqlite's -shm index and
 * touches the -wal: where the database itself did not change in this step, those copies add
 * nothing but noise to the layer, so the lower layer's stay.
 */
async function dropSqliteSidecars(target: CleanupTarget): Promise<string[]> {
  const dropped: string[] = [];
  for (const db of ['/var/lib/rpm/rpmdb.sqlite', '/usr/lib/sysimage/rpm/rpmdb.sqlite']) {
    if (await exists(join(target.dir, db))) continue;
    for (const sidecar of [`${db}-shm`, `${db}-wal`]) {
      const abs = join(target.dir, sidecar);
      const st = await lstat(abs).catch(() => undefined);
      if (!st?.isFile()) continue;
      await rm(abs, { force: true });
      dropped.push(sidecar);
    }
  }
  return dropped;
}

async function resetFile(path: string, content: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st?.isSymbolicLink()) return;
  if (st || (await exists(join(path, '..')))) await writeFile(path, content, { mode: 0o644 });
}
