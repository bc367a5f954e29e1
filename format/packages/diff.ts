// Package differences between two package locks: what the catalog's diff and changelog routes,
// `vztpl publish` and `vztpl outdated` report.
import type { LockedPackage, PackageChange } from '../oci.ts';

/** Packages added, removed and changed from one lock to another. */
export function packageDiff(from: readonly LockedPackage[], to: readonly LockedPackage[]): { added: LockedPackage[]; removed: LockedPackage[]; changed: PackageChange[] } {
  const key = (p: LockedPackage) => `${p.name}:${p.arch}`;
  const before = new Map(from.map((p) => [key(p), p]));
  const after = new Map(to.map((p) => [key(p), p]));
  const added = [...after.values()].filter((p) => !before.has(key(p)));
  const removed = [...before.values()].filter((p) => !after.has(key(p)));
  const changed = [...after.values()]
    .filter((p) => before.has(key(p)) && before.get(key(p))!.version !== p.version)
    .map((p) => ({ name: p.name, arch: p.arch, from: before.get(key(p))!.version, to: p.version }));
  return { added, removed, changed };
}

/** One line per change: "openssl 3.0.15-1~deb12u1 -> 3.0.16-1~deb12u1", "+ curl 7.88.1-10", "- wget 1.21.3-1". */
export function changeLines(c: { added: readonly LockedPackage[]; removed: readonly LockedPackage[]; upgraded: readonly PackageChange[] }): string[] {
  return [...c.upgraded.map((p) => `${p.name} ${p.from} -> ${p.to}`), ...c.added.map((p) => `+ ${p.name} ${p.version}`), ...c.removed.map((p) => `- ${p.name} ${p.version}`)];
}

/** The changes in a line: the first few, then how many more. */
export function changeSummary(c: { added: readonly LockedPackage[]; removed: readonly LockedPackage[]; upgraded: readonly PackageChange[] }, max = 3): string {
  const lines = changeLines(c);
  if (!lines.length) return 'no package changes';
  return lines.length > max ? `${lines.slice(0, max).join(', ')} and ${lines.length - max} more` : lines.join(', ');
}
