// What a layer archive may contain, and the errors that say why one was refused. Layers come
// from outside (any registry the host is pointed at), so the defaults are the strict ones an OS
// template still passes: setuid binaries and file capabilities are allowed (passwd, su, ping
// ship them), device nodes are not (a container's /dev is made by the runtime), and every
// count and size is bounded.
import type { Digest } from '../format/digest.ts';
import type { TarFormatErrorKind } from '../format/tar/read.ts';
import { ExitCode, VztplError } from '../common/errors.ts';
import type { NameProblemKind } from './safe-path.ts';

export interface ExtractPolicy {
  /** Most entries (headers of every type, whiteouts included). Default 1,000,000. */
  maxEntries?: number;
  /**
   * Most bytes of the uncompressed layer: the tar stream, so headers and padding count too, and
   * the declared sizes of all files together. Default 64 GiB.
   */
  maxTotalBytes?: number;
  /** Largest single file. Default 16 GiB. */
  maxFileBytes?: number;
  /** Longest path or symlink target, in bytes. Default 4096 (PATH_MAX). */
  maxPathLength?: number;
  /** Longest path component, in bytes. Default 255 (NAME_MAX). */
  maxComponentLength?: number;
  /**
   * Device nodes. 'whiteouts-only' (default): OCI whiteouts (`.wh.NAME`) and char 0/0 entries
   * (overlayfs' own whiteout form) are allowed, real devices refused. 'none': also refuses char
   * 0/0 entries (`.wh.` whiteouts are plain files and always allowed). 'all': any char or block
   * device is created (for templates that ship /dev nodes; the runtime usually makes them).
   */
  allowDevices?: 'none' | 'whiteouts-only' | 'all';
  /** Files (not directories) with the setuid or setgid bit. Default true: OS templates ship them. */
  allowSetuid?: boolean;
  /** The security.capability xattr (file capabilities, setuid's finer-grained form). Default true. */
  allowCapabilities?: boolean;
  /**
   * Hard links to files outside this layer. Only false: an extracted layer is a self-contained
   * overlayfs lower dir, and a link into another layer's dir cannot be represented in it.
   */
  allowHardlinkOutsideLayer?: false;
}

export type ResolvedPolicy = Required<ExtractPolicy>;

export const DEFAULT_EXTRACT_POLICY: Readonly<ResolvedPolicy> = Object.freeze({
  maxEntries: 1_000_000,
  maxTotalBytes: 64 * 2 ** 30,
  maxFileBytes: 16 * 2 ** 30,
  maxPathLength: 4096,
  maxComponentLength: 255,
  allowDevices: 'whiteouts-only',
  allowSetuid: true,
  allowCapabilities: true,
  allowHardlinkOutsideLayer: false,
});

/**
 * The defaults with `overrides` applied: the documented way to loosen (or tighten) extraction,
 * e.g. `{ allowDevices: 'all' }` for a template that ships device nodes, `{ allowSetuid: false,
 * allowCapabilities: false }` for layers that must not carry privileged binaries.
 */
export function resolveExtractPolicy(overrides: ExtractPolicy = {}): ResolvedPolicy {
  const policy: ResolvedPolicy = { ...DEFAULT_EXTRACT_POLICY };
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) (policy as unknown as Record<string, unknown>)[key] = value;
  }
  for (const key of ['maxEntries', 'maxTotalBytes', 'maxFileBytes', 'maxPathLength', 'maxComponentLength'] as const) {
    if (!Number.isSafeInteger(policy[key]) || policy[key] < 0) throw new TypeError(`extract policy: ${key} must be a non-negative integer`);
  }
  if (!['none', 'whiteouts-only', 'all'].includes(policy.allowDevices)) throw new TypeError(`extract policy: allowDevices must be 'none', 'whiteouts-only' or 'all'`);
  if (policy.allowHardlinkOutsideLayer !== false) throw new TypeError('extract policy: allowHardlinkOutsideLayer can only be false');
  return policy;
}

/** An entry's name for a message: quoted, and cut short when a hostile archive made it huge. */
function shown(entry: string): string {
  const quoted = JSON.stringify(entry);
  return quoted.length <= 300 ? quoted : `${quoted.slice(0, 240)}…" (${Buffer.byteLength(entry)} bytes)`;
}

/** The refusals the extractor itself decides (the others are safe-path.ts's and readTar's). */
type ExtractorKind =
  // the archive's entries
  | 'too-many-entries'
  | 'invalid-owner'
  | 'invalid-mtime'
  | 'root-not-directory'
  | 'whiteout-not-file'
  | 'under-whiteout'
  | 'through-symlink'
  | 'under-non-directory'
  | 'type-conflict'
  | 'device'
  | 'device-whiteout'
  | 'setuid'
  | 'capability'
  | 'file-too-large'
  | 'files-too-large'
  | 'hardlink-to-self'
  | 'hardlink-target-missing'
  | 'hardlink-target-not-file'
  // the tar stream
  | 'stream-too-large'
  | 'data-before-end'
  | 'data-after-end'
  | 'unchecked-data-before-end'
  // the blob
  | 'unsupported-media-type'
  | 'corrupt-compression'
  | 'blob-size'
  | 'target-exists';

/**
 * Every way extractLayer refuses a layer, and the error class that reports it: one class per
 * kind, so the kind alone says whether the archive is unsafe, over a limit or malformed.
 * ('digest-mismatch', 'diff-id-mismatch': DigestMismatchError; 'io': ExtractIOError.)
 */
const CLASS_OF_KIND = {
  'too-many-entries': 'limit',
  'invalid-owner': 'malformed',
  'invalid-mtime': 'malformed',
  'root-not-directory': 'unsafe',
  'whiteout-not-file': 'unsafe',
  'under-whiteout': 'unsafe',
  'through-symlink': 'unsafe',
  'under-non-directory': 'unsafe',
  'type-conflict': 'unsafe',
  device: 'unsafe',
  'device-whiteout': 'unsafe',
  setuid: 'unsafe',
  capability: 'unsafe',
  'file-too-large': 'limit',
  'files-too-large': 'limit',
  'hardlink-to-self': 'unsafe',
  'hardlink-target-missing': 'unsafe',
  'hardlink-target-not-file': 'unsafe',
  'stream-too-large': 'limit',
  'data-before-end': 'malformed',
  'data-after-end': 'malformed',
  'unchecked-data-before-end': 'malformed',
  'unsupported-media-type': 'malformed',
  'corrupt-compression': 'malformed',
  'blob-size': 'layer',
  'target-exists': 'layer',
  // safe-path.ts: names
  'path-nul-byte': 'unsafe',
  'path-absolute': 'unsafe',
  'path-dot-dot': 'unsafe',
  'path-too-long': 'limit',
  'path-empty-component': 'unsafe',
  'path-dot-component': 'unsafe',
  'path-component-too-long': 'limit',
  'hardlink-absolute': 'unsafe',
  'hardlink-no-target': 'unsafe',
  'hardlink-path-nul-byte': 'unsafe',
  'hardlink-path-absolute': 'unsafe',
  'hardlink-path-dot-dot': 'unsafe',
  // A hard link's target is refused as unsafe whatever its path's problem, lengths included.
  'hardlink-path-too-long': 'unsafe',
  'hardlink-path-empty-component': 'unsafe',
  'hardlink-path-dot-component': 'unsafe',
  'hardlink-path-component-too-long': 'unsafe',
  'symlink-empty-target': 'unsafe',
  'symlink-nul-byte': 'unsafe',
  'symlink-too-long': 'limit',
  'whiteout-aufs-metadata': 'unsafe',
  'whiteout-no-name': 'unsafe',
  'whiteout-dot': 'unsafe',
  'xattr-overlay': 'unsafe',
  'xattr-name-not-allowed': 'unsafe',
  'xattr-name-too-long': 'limit',
  'xattr-value-too-large': 'limit',
  // readTar: the tar stream's form
  truncated: 'malformed',
  'no-end-marker': 'malformed',
  'bad-checksum': 'malformed',
  'bad-number-field': 'malformed',
  'bad-pax-record': 'malformed',
  'oversized-meta-header': 'malformed',
  'unsupported-entry-type': 'malformed',
  'nul-in-name': 'malformed',
} as const satisfies Record<ExtractorKind | NameProblemKind | TarFormatErrorKind, 'unsafe' | 'limit' | 'malformed' | 'layer'>;

type RefusalClass = (typeof CLASS_OF_KIND)[RefusalKind];
type KindsOf<C extends RefusalClass> = { [K in RefusalKind]: (typeof CLASS_OF_KIND)[K] extends C ? K : never }[RefusalKind];

/** A refusal that refusal() makes: the class of the error follows from the kind. */
export type RefusalKind = keyof typeof CLASS_OF_KIND;
/** Every RefusalKind (for callers and tests that go through them all). */
export const REFUSAL_KINDS = Object.freeze(Object.keys(CLASS_OF_KIND) as RefusalKind[]);
export type UnsafeKind = KindsOf<'unsafe'>;
export type LimitKind = KindsOf<'limit'>;
export type MalformedKind = KindsOf<'malformed'>;
export type LayerKind = KindsOf<'layer'>;
export type DigestMismatchKind = 'digest-mismatch' | 'diff-id-mismatch';
/** Every LayerExtractError's kind. */
export type LayerExtractErrorKind = RefusalKind | DigestMismatchKind | 'io';

/** Why a layer was not extracted. Nothing of it is left on disk when this is thrown. */
export class LayerExtractError<K extends LayerExtractErrorKind = LayerExtractErrorKind> extends VztplError {
  /** Digest of the layer blob. */
  readonly layer: Digest;
  /** What is wrong, as data (the reason says it in words). */
  readonly kind: K;
  /** The archive entry at fault ('./' for the root); undefined when the whole layer is. */
  readonly entry: string | undefined;
  readonly reason: string;
  constructor(layer: Digest, kind: K, entry: string | undefined, reason: string, options?: ErrorOptions) {
    super(`layer ${layer}: ${entry === undefined ? '' : `entry ${shown(entry)} `}${reason}`, ExitCode.failure, options);
    this.layer = layer;
    this.kind = kind;
    this.entry = entry;
    this.reason = reason;
  }
}

/** The error for a refusal of `kind`, of the class the kind belongs to. */
export function refusal(layer: Digest, kind: RefusalKind, entry: string | undefined, reason: string, options?: ErrorOptions): LayerExtractError<RefusalKind> {
  switch (CLASS_OF_KIND[kind]) {
    case 'unsafe':
      return new UnsafeArchiveError(layer, kind as UnsafeKind, entry, reason, options);
    case 'limit':
      return new ArchiveLimitError(layer, kind as LimitKind, entry, reason, options);
    case 'malformed':
      return new MalformedArchiveError(layer, kind as MalformedKind, entry, reason, options);
    case 'layer':
      return new LayerExtractError(layer, kind, entry, reason, options);
  }
}

/** The archive tries something unsafe: a path out of the root, a write through a symlink, ... */
export class UnsafeArchiveError extends LayerExtractError<UnsafeKind> {}

/** An entry breaks one of the policy's limits (counts, sizes, lengths). */
export class ArchiveLimitError extends LayerExtractError<LimitKind> {}

/** Not a well-formed layer: truncated, corrupt, unknown entry types, corrupt compression. */
export class MalformedArchiveError extends LayerExtractError<MalformedKind> {}

/** The blob or its uncompressed tar is not what the manifest and config say. */
export class DigestMismatchError extends LayerExtractError<DigestMismatchKind> {
  readonly which: 'digest' | 'diff_id';
  readonly expected: Digest;
  readonly actual: Digest;
  constructor(layer: Digest, which: 'digest' | 'diff_id', expected: Digest, actual: Digest) {
    super(layer, which === 'digest' ? 'digest-mismatch' : 'diff-id-mismatch', undefined, `${which === 'digest' ? 'blob digest' : 'diff_id (digest of the uncompressed tar)'} is ${actual}, expected ${expected}`);
    this.which = which;
    this.expected = expected;
    this.actual = actual;
  }
}

/** The host failed while writing a valid layer (ENOSPC, EIO, ...): `code` is the errno name. */
export class ExtractIOError extends LayerExtractError<'io'> {
  readonly code: string;
  constructor(layer: Digest, entry: string | undefined, code: string, reason: string, options?: ErrorOptions) {
    super(layer, 'io', entry, reason, options);
    this.code = code;
  }
}
