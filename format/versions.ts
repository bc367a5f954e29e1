// Template versions (shared by the registry and the host cache): semver tags, immutable once
// published, and the aliases that follow the highest version: `latest`, `MAJOR`, `MAJOR.MINOR`.
// Pre-releases never move an alias.
import semver from 'semver';

/** Strict x.y.z[-prerelease] (no "v", no build metadata: '+' is not allowed in OCI tags). */
export function isVersionTag(tag: string): boolean {
  return /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$/.test(tag) && semver.valid(tag) === tag;
}

/** The tags publishing moves: latest, MAJOR and MAJOR.MINOR. */
export function isAliasTag(tag: string): boolean {
  return tag === 'latest' || /^(?:0|[1-9]\d*)(?:\.(?:0|[1-9]\d*))?$/.test(tag);
}

/** The aliases `version` should hold given all published versions (itself included). */
export function aliasesFor(version: string, versions: readonly string[]): string[] {
  if (semver.prerelease(version)) return [];
  const releases = versions.filter((v) => isVersionTag(v) && !semver.prerelease(v));
  const highest = (filter: (v: string) => boolean) => semver.maxSatisfying(releases.filter(filter), '*');
  const major = semver.major(version);
  const minor = semver.minor(version);
  const out: string[] = [];
  if (highest(() => true) === version) out.push('latest');
  if (highest((v) => semver.major(v) === major) === version) out.push(String(major));
  if (highest((v) => semver.major(v) === major && semver.minor(v) === minor) === version) out.push(`${major}.${minor}`);
  return out;
}

/**
 * Resolves a range as hosts write it: `latest`, an exact version, or a semver range (`^1.4`,
 * `~12.2`, `1.x`, `>=1.2 <2`). Returns the highest matching published version.
 */
export function resolveRange(range: string, versions: readonly string[]): string | undefined {
  const published = versions.filter(isVersionTag);
  if (range === 'latest' || range === '' || range === '*') return semver.maxSatisfying(published.filter((v) => !semver.prerelease(v)), '*') ?? undefined;
  if (isVersionTag(range)) return published.includes(range) ? range : undefined;
  if (!semver.validRange(range)) return undefined;
  return semver.maxSatisfying(published, range) ?? undefined;
}

export function isValidRange(range: string): boolean {
  return range === 'latest' || isVersionTag(range) || semver.validRange(range) !== null;
}
