// The package lock of an RPM-family root: its rpmdb, as the root's own rpm lists it (or the
// host's rpm, where the root has none).
import { readdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { VztplError } from '../../common/errors.ts';
import { requirePrograms, run } from '../../common/run.ts';
import type { LockedPackage } from '../oci.ts';
import { compareStrings } from './lock.ts';
import { resolveInRoot, TEMPLATE_PATH } from './root.ts';

/** rpm's --queryformat for a lock line: name, [epoch:]version-release, arch. */
export const RPM_QUERY_FORMAT = '%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n';

/**
 * Parses `rpm -qa --queryformat RPM_QUERY_FORMAT` output, sorted by name, version and arch.
 * Imported signing keys (gpg-pubkey) are headers in the rpmdb, not packages: left out.
 */
export function parseRpmQuery(out: string): LockedPackage[] {
  const pkgs: LockedPackage[] = [];
  for (const line of out.split('\n')) {
    if (!line.trim()) continue;
    const [name, version, arch] = line.split('\t');
    if (!name || version === undefined || arch === undefined) throw new VztplError(`unexpected rpm -qa output line: ${line}`);
    if (name === 'gpg-pubkey') continue;
    pkgs.push({ name, version, arch });
  }
  return pkgs.sort((a, b) => compareStrings(a.name, b.name) || compareStrings(a.version, b.version) || compareStrings(a.arch, b.arch));
}

/** The rpmdb location of a root: the given one, or the first of the usual ones holding a database. */
export async function findRpmDbPath(root: string, dbpath?: string): Promise<string> {
  if (dbpath) return dbpath;
  for (const candidate of ['/var/lib/rpm', '/usr/lib/sysimage/rpm']) {
    const dir = await resolveInRoot(root, candidate);
    if (!dir) continue;
    const names = await readdir(dir).catch(() => [] as string[]);
    if (names.some((n) => n === 'rpmdb.sqlite' || n === 'Packages' || n === 'Packages.db')) return candidate;
  }
  return '/var/lib/rpm';
}

export interface RpmQueryCommand {
  file: string;
  args: string[];
  what: string;
  /** The root's own rpm runs (chroot, clean environment); else the host's rpm reads the root's database. */
  inRoot: boolean;
  env: Record<string, string>;
}

/**
 * The `rpm -qa` that lists a root's packages: the root's own rpm when it has one (chroot ROOT
 * rpm -qa), else the host's rpm on the root's database at dbpath (default: wherever one is
 * found). Looks at the root only; runs nothing.
 */
export async function rpmQueryCommand(root: string, dbpath?: string): Promise<RpmQueryCommand> {
  root = resolve(root);
  for (const candidate of ['/usr/bin/rpm', '/bin/rpm']) {
    const host = await resolveInRoot(root, candidate);
    const st = host ? await stat(host).catch(() => undefined) : undefined;
    if (!st?.isFile() || !(st.mode & 0o111)) continue;
    return {
      file: 'chroot',
      args: [root, candidate, '-qa', '--qf', RPM_QUERY_FORMAT],
      what: 'rpm -qa in the template',
      inRoot: true,
      env: { PATH: TEMPLATE_PATH, HOME: '/root', LC_ALL: 'C' },
    };
  }
  const db = await findRpmDbPath(root, dbpath);
  return { file: 'rpm', args: ['--root', root, '--dbpath', db, '-qa', '--qf', RPM_QUERY_FORMAT], what: 'rpm -qa (host rpm on the template)', inRoot: false, env: { LC_ALL: 'C' } };
}

/** The packages installed in a root, sorted by name (see rpmQueryCommand for which rpm reads them). */
export async function rpmPackageLock(root: string, dbpath?: string): Promise<LockedPackage[]> {
  const cmd = await rpmQueryCommand(root, dbpath);
  if (!cmd.inRoot) requirePrograms({ rpm: 'rpm' });
  const out = await run(cmd.file, cmd.args, { what: cmd.what, cleanEnv: cmd.inRoot, env: cmd.env });
  return parseRpmQuery(out);
}
