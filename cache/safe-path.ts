// Pure checks of the names inside a layer archive: entry paths, hard-link targets, whiteout
// names and extended attribute names. Each returns why a name is refused, or undefined.
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX } from '../format/tar/walk.ts';

export interface NameLimits {
  maxPathLength: number;
  maxComponentLength: number;
}

/** Why `path` (as readTar gives it: no leading "./", no trailing "/") may not be extracted. */
export function pathProblem(path: string, limits: NameLimits): string | undefined {
  if (path.includes('\0')) return 'has a NUL byte in its path';
  if (path.startsWith('/')) return 'is an absolute path';
  const components = path.split('/');
  if (components.includes('..')) return 'has a ".." component';
  if (Buffer.byteLength(path) > limits.maxPathLength) return `has a path longer than ${limits.maxPathLength} bytes`;
  for (const c of components) {
    if (c === '') return 'has an empty path component';
    if (c === '.') return 'has a "." path component';
    if (Buffer.byteLength(c) > limits.maxComponentLength) return `has a path component longer than ${limits.maxComponentLength} bytes`;
  }
  return undefined;
}

/** A hard link's target, normalized ("./a" -> "a"), or why it is refused. */
export function hardlinkTarget(linkname: string, limits: NameLimits): { target: string } | { problem: string } {
  if (linkname.startsWith('/')) return { problem: `is a hard link to an absolute path (${JSON.stringify(linkname)})` };
  let target = linkname;
  while (target.startsWith('./')) target = target.slice(2);
  if (target === '' || target === '.') return { problem: 'is a hard link without a target' };
  const problem = pathProblem(target, limits);
  if (problem) return { problem: `is a hard link whose target ${JSON.stringify(linkname)} ${problem}` };
  return { target };
}

/** Why a symlink's target is refused (it is stored, never followed, so only its form matters). */
export function symlinkProblem(linkname: string, limits: NameLimits): string | undefined {
  if (linkname === '') return 'is a symlink with an empty target';
  if (linkname.includes('\0')) return 'is a symlink whose target has a NUL byte';
  if (Buffer.byteLength(linkname) >= limits.maxPathLength) return `is a symlink whose target is longer than ${limits.maxPathLength - 1} bytes`;
  return undefined;
}

export type WhiteoutName =
  | { kind: 'none' }
  /** `.wh.NAME`: NAME is deleted from the layers below. */
  | { kind: 'whiteout'; name: string }
  /** `.wh..wh..opq`: the directory hides what the layers below have in it. */
  | { kind: 'opaque' }
  | { kind: 'invalid'; problem: string };

export function classifyWhiteout(base: string): WhiteoutName {
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  if (base === OPAQUE_WHITEOUT) return { kind: 'opaque' };
  if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return { kind: 'invalid', problem: `is AUFS metadata (${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}*), not an OCI whiteout` };
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '') return { kind: 'invalid', problem: 'is a whiteout without a name' };
  if (name === '.' || name === '..') return { kind: 'invalid', problem: `is a whiteout for "${name}"` };
  return { kind: 'whiteout', name };
}

const OVERLAY_XATTR = /^(trusted|user)\.overlay(\.|$)/;
const XATTR_NAME = /^(user|security|trusted)\.[\x21-\x3c\x3e-\x7e]+$/;
const SYSTEM_XATTRS = new Set(['system.posix_acl_access', 'system.posix_acl_default']);
/** Linux's XATTR_SIZE_MAX and XATTR_NAME_MAX. */
export const XATTR_VALUE_MAX = 65536;
const XATTR_NAME_MAX = 255;

/** Why an SCHILY.xattr record may not be restored. */
export function xattrProblem(name: string, value: Buffer): string | undefined {
  if (OVERLAY_XATTR.test(name)) return `carries the overlayfs attribute ${JSON.stringify(name)}, which would change how the overlay reads the layers (only the extractor writes overlay attributes)`;
  if (!XATTR_NAME.test(name) && !SYSTEM_XATTRS.has(name)) {
    return `has the extended attribute ${JSON.stringify(name)}, outside what a layer may carry (user.*, security.*, trusted.*, system.posix_acl_access/default; printable ASCII without "=")`;
  }
  if (name.length > XATTR_NAME_MAX) return `has an extended attribute name longer than ${XATTR_NAME_MAX} bytes`;
  if (value.length > XATTR_VALUE_MAX) return `has an extended attribute ${name} of ${value.length} bytes (at most ${XATTR_VALUE_MAX})`;
  return undefined;
}
