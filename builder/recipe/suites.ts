// Which Debian-family suites exist, and which distribution each belongs to, so that a recipe's
// `suite` is checked before a build: a typo (bookwrom) or an Ubuntu suite on a Debian mirror
// otherwise fails only when the bootstrapper gets a 404 from the mirror.
//
// The knowledge is the bootstrappers' own, read from the host the way mmdebstrap reads it
// (get_suite_by_vendor): debootstrap's scripts (/usr/share/debootstrap/scripts, one script or
// symbolic link per suite; the keyring or default mirror of the script it leads to names the
// distribution: sid -> debian-archive-keyring, gutsy -> ubuntu-archive-keyring), the release
// tables of distro-info-data (/usr/share/distro-info/{debian,ubuntu}.csv), and a built-in list.
// The built-in list is always included: it keeps validation working on a host without
// debootstrap, and knows suites newer than the host's debootstrap (Debian 12's debootstrap has
// no script for Ubuntu 24.04 noble, which mmdebstrap builds from its own list).
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { closest } from './nearest.ts';

/** What a suite name looks like: a lower-case codename or alias (bookworm, noble, stable). */
export const suitePattern = /^[a-z][a-z0-9-]*$/;

/** The distributions vztpl tells apart by their mirror; the built-in list of their suites. */
export const archives = {
  debian: {
    name: 'Debian',
    mirror: 'http://deb.debian.org/debian',
    suites: ['stretch', 'buster', 'bullseye', 'bookworm', 'trixie', 'forky', 'duke', 'sid', 'oldoldstable', 'oldstable', 'stable', 'testing', 'unstable'],
    examples: 'a codename such as bookworm, or stable, testing, unstable',
  },
  ubuntu: {
    name: 'Ubuntu',
    mirror: 'http://archive.ubuntu.com/ubuntu',
    suites: ['xenial', 'bionic', 'focal', 'jammy', 'noble', 'oracular', 'plucky', 'questing', 'resolute'],
    examples: 'a codename such as noble',
  },
} as const;

export type Archive = keyof typeof archives;

/**
 * A distribution as debootstrap's scripts name it: debian, ubuntu, or another one debootstrap
 * knows (kali, tanglu, pureos); 'unknown' for a script that does not say.
 */
export type Distribution = string;

/** Every known suite and the distributions it belongs to. */
export type KnownSuites = ReadonlyMap<string, ReadonlySet<Distribution>>;

export interface SuiteSources {
  /** debootstrap's scripts directory; absent or unreadable: skipped. */
  debootstrapScripts: string;
  /** distro-info-data's directory (debian.csv, ubuntu.csv); absent or unreadable: skipped. */
  distroInfo: string;
}

export const hostSuiteSources: SuiteSources = {
  debootstrapScripts: '/usr/share/debootstrap/scripts',
  distroInfo: '/usr/share/distro-info',
};

/** The suites the bootstrappers know, from the given sources plus the built-in list. */
export function knownSuites(sources: SuiteSources = hostSuiteSources): KnownSuites {
  const known = new Map<string, Set<Distribution>>();
  const add = (suite: string, dist: Distribution) => {
    let dists = known.get(suite);
    if (!dists) known.set(suite, (dists = new Set()));
    dists.add(dist);
  };
  for (const [dist, archive] of Object.entries(archives)) for (const suite of archive.suites) add(suite, dist);
  for (const dist of Object.keys(archives)) readDistroInfo(path.join(sources.distroInfo, `${dist}.csv`), dist, add);
  readDebootstrapScripts(sources.debootstrapScripts, add);
  return known;
}

let hostKnown: KnownSuites | undefined;

/** knownSuites() of this host, read once per process. */
export function hostKnownSuites(): KnownSuites {
  return (hostKnown ??= knownSuites());
}

/** distro-info-data's table: one release a line, its codename in the "series" column. */
function readDistroInfo(file: string, dist: Distribution, add: (suite: string, dist: Distribution) => void): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return;
  }
  const [header, ...rows] = text.split('\n');
  const column = header?.split(',').indexOf('series') ?? -1;
  if (column < 0) return;
  for (const row of rows) {
    const series = row.split(',')[column]?.trim();
    // experimental is not a suite of its own: it only adds packages to unstable.
    if (series && suitePattern.test(series) && series !== 'experimental') add(series, dist);
  }
}

/** debootstrap's scripts: each suite a script or a symbolic link to the script it shares. */
function readDebootstrapScripts(dir: string, add: (suite: string, dist: Distribution) => void): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const byScript = new Map<string, Distribution>();
  for (const name of names) {
    // debian-common is included by the others; sarge.buildd and the like are variants.
    if (!suitePattern.test(name) || name.endsWith('-common')) continue;
    let script: string;
    try {
      script = realpathSync(path.join(dir, name));
    } catch {
      continue; // a dangling link
    }
    let dist = byScript.get(script);
    if (dist === undefined) {
      let text = '';
      try {
        text = readFileSync(script, 'utf8');
      } catch {
        // unreadable: still a suite debootstrap has a script for
      }
      dist = scriptDistribution(text);
      byScript.set(script, dist);
    }
    add(name, dist);
  }
}

/** The distribution a debootstrap script is for: its keyring's name, else its default mirror. */
function scriptDistribution(text: string): Distribution {
  const keyring = /^keyring\s+(?:\S*\/)?([a-z0-9]+)-archive-[^/\s]*$/m.exec(text);
  if (keyring?.[1]) return keyring[1];
  const mirror = /^\s*default_mirror\s+(\S+)/m.exec(text);
  return (mirror?.[1] && mirrorArchive(mirror[1])) || 'unknown';
}

/**
 * The distribution a mirror serves, when its URL says: a debian.org host or a /debian path
 * segment (http://ftp.de.debian.org/debian, http://mirror.example/pub/debian), an ubuntu.com host
 * or an /ubuntu or /ubuntu-ports segment. undefined for anything else (a local mirror).
 */
export function mirrorArchive(mirror: string): Archive | undefined {
  let url: URL;
  try {
    url = new URL(mirror);
  } catch {
    return undefined;
  }
  const host = url.hostname.toLowerCase();
  const segments = url.pathname.toLowerCase().split('/');
  const debian = host === 'debian.org' || host.endsWith('.debian.org') || segments.includes('debian');
  const ubuntu = host === 'ubuntu.com' || host.endsWith('.ubuntu.com') || segments.includes('ubuntu') || segments.includes('ubuntu-ports');
  if (debian === ubuntu) return undefined;
  return debian ? 'debian' : 'ubuntu';
}

const displayNames: Record<string, string> = { debian: 'Debian', ubuntu: 'Ubuntu', pureos: 'PureOS' };
const displayName = (d: Distribution) => displayNames[d] ?? d.charAt(0).toUpperCase() + d.slice(1);
const withArticle = (word: string) => `${/^[AEIOU]/.test(word) ? 'an' : 'a'} ${word}`;

/**
 * What is wrong with a suite for a mirror, or undefined when the bootstrappers know the suite
 * for that mirror's distribution (any known suite when the mirror does not say which).
 * `mirrorGiven` is false when the mirror is the default one (the recipe has no mirror).
 */
export function suiteProblem(suite: string, mirror: string, mirrorGiven: boolean, known: KnownSuites = hostKnownSuites()): string | undefined {
  const dists = known.get(suite);
  const archive = mirrorArchive(mirror);
  if (archive === undefined) {
    if (dists) return undefined;
    const guess = closest(suite, [...known.keys()].sort());
    return `unknown suite "${suite}": neither debootstrap nor mmdebstrap knows it${guess ? `; did you mean ${guess}?` : ''}`;
  }
  if (dists?.has(archive)) return undefined;
  const { name, examples } = archives[archive];
  const other = [...(dists ?? [])].filter((d) => d !== 'unknown').sort()[0];
  if (other !== undefined) {
    const which = mirrorGiven ? `the mirror ${mirror}` : `the default mirror ${mirror}`;
    const otherMirror = other in archives ? archives[other as Archive].mirror : undefined;
    const hint = otherMirror ? `; for ${displayName(other)} set mirror: ${otherMirror}` : '';
    return `${suite} is ${withArticle(displayName(other))} suite, but ${which} is ${withArticle(name)} archive${hint}`;
  }
  const ofArchive = [...known].filter(([, d]) => d.has(archive)).map(([s]) => s);
  const guess = closest(suite, ofArchive.sort());
  return `unknown ${name} suite "${suite}"${guess ? `; did you mean ${guess}?` : ` (${examples})`}`;
}
