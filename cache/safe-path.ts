// Pure checks of the names inside a layer archive: entry paths, hard-link targets, whiteout
// names and extended attribute names. Each returns why a name is refused (a NameProblem: its
// kind, and the reason people read), or undefined.
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX } from '../format/oci.ts';

export type PathProblemKind =
  | 'path-nul-byte'
  | 'path-absolute'
  | 'path-dot-dot'
  | 'path-too-long'
  | 'path-empty-component'
  | 'path-dot-component'
  | 'path-component-too-long';

/** A hard link's target: absolute, empty, or one of the path problems (`hardlink-path-dot-dot`, ...). */
export type HardlinkProblemKind = 'hardlink-absolute' | 'hardlink-no-target' | `hardlink-${PathProblemKind}`;

export type SymlinkProblemKind = 'symlink-empty-target' | 'symlink-nul-byte' | 'symlink-too-long';

export type WhiteoutProblemKind = 'whiteout-aufs-metadata' | 'whiteout-no-name' | 'whiteout-dot';

export type XattrProblemKind = 'xattr-overlay' | 'xattr-name-not-allowed' | 'xattr-name-too-long' | 'xattr-value-too-large';

export type NameProblemKind = PathProblemKind | HardlinkProblemKind | SymlinkProblemKind | WhiteoutProblemKind | XattrProblemKind;

/** Why a name is refused: `kind` to act on, `reason` (completing "entry X ...") to show. */
export interface NameProblem<K extends NameProblemKind = NameProblemKind> {
  kind: K;
  reason: string;
}

const problem = <K extends NameProblemKind>(kind: K, reason: string): NameProblem<K> => ({ kind, reason });

export interface NameLimits {
  maxPathLength: number;
  maxComponentLength: number;
}

/** Why `path` (as readTar gives it: no leading "./", no trailing "/") may not be extracted. */
export function pathProblem(path: string, limits: NameLimits): NameProblem<PathProblemKind> | undefined {
  if (path.includes('\0')) return problem('path-nul-byte', 'has a NUL byte in its path');
  if (path.startsWith('/')) return problem('path-absolute', 'is an absolute path');
  const components = path.split('/');
  if (components.includes('..')) return problem('path-dot-dot', 'has a ".." component');
  if (Buffer.byteLength(path) > limits.maxPathLength) return problem('path-too-long', `has a path longer than ${limits.maxPathLength} bytes`);
  for (const c of components) {
    if (c === '') return problem('path-empty-component', 'has an empty path component');
    if (c === '.') return problem('path-dot-component', 'has a "." path component');
    if (Buffer.byteLength(c) > limits.maxComponentLength) return problem('path-component-too-long', `has a path component longer than ${limits.maxComponentLength} bytes`);
  }
  return undefined;
}

/** A hard link's target, normalized ("./a" -> "a"), or why it is refused. */
export function hardlinkTarget(linkname: string, limits: NameLimits): { target: string } | { problem: NameProblem<HardlinkProblemKind> } {
  if (linkname.startsWith('/')) return { problem: problem('hardlink-absolute', `is a hard link to an absolute path (${JSON.stringify(linkname)})`) };
  let target = linkname;
  while (target.startsWith('./')) target = target.slice(2);
  if (target === '' || target === '.') return { problem: problem('hardlink-no-target', 'is a hard link without a target') };
  const bad = pathProblem(target, limits);
  if (bad) return { problem: problem(`hardlink-${bad.kind}`, `is a hard link whose target ${JSON.stringify(linkname)} ${bad.reason}`) };
  return { target };
}

/** Why a symlink's target is refused (it is stored, never followed, so only its form matters). */
export function symlinkProblem(linkname: string, limits: NameLimits): NameProblem<SymlinkProblemKind> | undefined {
  if (linkname === '') return problem('symlink-empty-target', 'is a symlink with an empty target');
  if (linkname.includes('\0')) return problem('symlink-nul-byte', 'is a symlink whose target has a NUL byte');
  if (Buffer.byteLength(linkname) >= limits.maxPathLength) return problem('symlink-too-long', `is a symlink whose target is longer than ${limits.maxPathLength - 1} bytes`);
  return undefined;
}

export type WhiteoutName =
  | { kind: 'none' }
  /** `.wh.NAME`: NAME is deleted from the layers below. */
  | { kind: 'whiteout'; name: string }
  /** `.wh..wh..opq`: the directory hides what the layers below have in it. */
  | { kind: 'opaque' }
  | { kind: 'invalid'; problem: NameProblem<WhiteoutProblemKind> };

export function classifyWhiteout(base: string): WhiteoutName {
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  if (base === OPAQUE_WHITEOUT) return { kind: 'opaque' };
  if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return { kind: 'invalid', problem: problem('whiteout-aufs-metadata', `is AUFS metadata (${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}*), not an OCI whiteout`) };
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '') return { kind: 'invalid', problem: problem('whiteout-no-name', 'is a whiteout without a name') };
  if (name === '.' || name === '..') return { kind: 'invalid', problem: problem('whiteout-dot', `is a whiteout for "${name}"`) };
  return { kind: 'whiteout', name };
}

const OVERLAY_XATTR = /^(trusted|user)\.overlay(\.|$)/;
const XATTR_NAME = /^(user|security|trusted)\.[\x21-\x3c\x3e-\x7e]+$/;
const SYSTEM_XATTRS = new Set(['system.posix_acl_access', 'system.posix_acl_default']);
/** Linux's XATTR_SIZE_MAX and XATTR_NAME_MAX. */
export const XATTR_VALUE_MAX = 65536;
const XATTR_NAME_MAX = 255;

/** Why an SCHILY.xattr record may not be restored. */
export function xattrProblem(name: string, value: Buffer): NameProblem<XattrProblemKind> | undefined {
  if (OVERLAY_XATTR.test(name)) return problem('xattr-overlay', `carries the overlayfs attribute ${JSON.stringify(name)}, which would change how the overlay reads the layers (only the extractor writes overlay attributes)`);
  if (!XATTR_NAME.test(name) && !SYSTEM_XATTRS.has(name)) {
    return problem('xattr-name-not-allowed', `has the extended attribute ${JSON.stringify(name)}, outside what a layer may carry (user.*, security.*, trusted.*, system.posix_acl_access/default; printable ASCII without "=")`);
  }
  if (name.length > XATTR_NAME_MAX) return problem('xattr-name-too-long', `has an extended attribute name longer than ${XATTR_NAME_MAX} bytes`);
  if (value.length > XATTR_VALUE_MAX) return problem('xattr-value-too-large', `has an extended attribute ${name} of ${value.length} bytes (at most ${XATTR_VALUE_MAX})`);
  return undefined;
}
