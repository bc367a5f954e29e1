// The package lock of a Debian-family root: its dpkg database, as dpkg-query lists it.
import { readFile } from 'node:fs/promises';
import { VztplError } from '../../common/errors.ts';
import { run } from '../../common/run.ts';
import type { LockedPackage } from '../oci.ts';
import { compareStrings, parseLockLines } from './lock.ts';
import { resolveInRoot } from './root.ts';

/** dpkg-query's --showformat for a lock line, with dpkg-query's own escapes (\t, \n). */
export const DPKG_QUERY_FORMAT = '${Package}\\t${Version}\\t${Architecture}\\n';

/** `dpkg-query -W` of a root, run by the root's own dpkg-query (chroot). Pure: no program runs. */
export function dpkgQueryCommand(root: string): [file: string, args: string[]] {
  return ['chroot', [root, 'dpkg-query', '-W', `-f=${DPKG_QUERY_FORMAT.replace(/\\t/g, '\t').replace(/\\n/g, '\n')}`]];
}

/** The packages installed in a root, sorted by name, as the root's own dpkg-query lists them. */
export async function dpkgPackageLock(root: string, signal?: AbortSignal): Promise<LockedPackage[]> {
  const [file, args] = dpkgQueryCommand(root);
  const out = await run(file, args, {
    what: 'dpkg-query in the template',
    cleanEnv: true,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
    signal,
  });
  return parseLockLines(out);
}

/**
 * The packages a dpkg status file (/var/lib/dpkg/status) records, as `dpkg-query -W` lists
 * them: every package whose state is not not-installed (config-files included), sorted by name
 * and architecture.
 */
export function parseDpkgStatus(text: string): LockedPackage[] {
  const packages: LockedPackage[] = [];
  for (const paragraph of text.split(/\n[ \t]*\n/)) {
    const fields = new Map<string, string>();
    for (const line of paragraph.split('\n')) {
      // Continuation lines (Description, Conffiles) start with white space.
      const m = /^([^\s:][^:]*):[ \t]*(.*)$/.exec(line);
      if (m) fields.set(m[1]!.toLowerCase(), m[2]!.trim());
    }
    const name = fields.get('package');
    if (!name) continue;
    const state = (fields.get('status') ?? '').split(/\s+/)[2];
    if (state === undefined || state === 'not-installed') continue;
    packages.push({ name, version: fields.get('version') ?? '', arch: fields.get('architecture') ?? '' });
  }
  return packages.sort((a, b) => compareStrings(a.name, b.name) || compareStrings(a.arch, b.arch));
}

/**
 * The packages of a root read from its dpkg status file, without running anything of the
 * root's (a container's root is not trusted to run on the host). A root whose dpkg was
 * interrupted may have newer entries in /var/lib/dpkg/updates that this does not read.
 */
export async function readDpkgStatus(root: string): Promise<LockedPackage[]> {
  const file = await resolveInRoot(root, '/var/lib/dpkg/status');
  if (!file) throw new VztplError(`${root} has no dpkg database (/var/lib/dpkg/status)`);
  return parseDpkgStatus(await readFile(file, 'utf8'));
}
