// A template's package lock: every installed package with its exact version, sorted by name.
// The lock readers (dpkg.ts, rpm.ts) serve the builder (after each step) and the host (a commit
// re-reads the packages of a container's root), so they live here, below both.
import type { LockedPackage, TemplateMetadata } from '../oci.ts';

/** How packages are installed and listed in a template: Debian's dpkg/apt or rpm/dnf. */
export type PackageFamily = TemplateMetadata['family'];

export const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Parses lock lines, `name<TAB>version<TAB>arch` each (what DPKG_QUERY_FORMAT prints and
 * formatLockLines writes), sorted by name; the order of packages of one name is kept.
 */
export function parseLockLines(text: string): LockedPackage[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [name = '', version = '', arch = ''] = l.split('\t');
      return { name, version, arch };
    })
    .sort((a, b) => compareStrings(a.name, b.name));
}

/** The lines parseLockLines reads (no newline after the last). */
export function formatLockLines(packages: readonly LockedPackage[]): string {
  return packages.map((p) => `${p.name}\t${p.version}\t${p.arch}`).join('\n');
}
