// Node has no xattr API: one `setfattr --restore` process sets every extended attribute of an
// extracted tree from a generated dump (getfattr's format), never following symlinks (-h).
import { execFileSync } from 'node:child_process';
import { getSystemErrorMap } from 'node:util';
import { findProgram } from '../common/programs.ts';
import { MissingToolError } from '../common/errors.ts';

/** getfattr's quoting: every byte outside printable ASCII, and the backslash, as \ooo. */
function quote(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) out += b > 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, '0')}`;
  return out;
}

/** The dump `setfattr --restore` reads; paths are relative to the directory it runs in. */
export function xattrDump(entries: Iterable<[path: string, xattrs: ReadonlyMap<string, Buffer>]>): string {
  const parts: string[] = [];
  for (const [path, xattrs] of entries) {
    if (xattrs.size === 0) continue;
    parts.push(`# file: ${quote(Buffer.from(path === '' ? '.' : path, 'utf8'))}\n`);
    // Names are checked to be printable ASCII without "=" (safe-path.ts xattrProblem).
    for (const [name, value] of xattrs) parts.push(value.length ? `${name}=0x${value.toString('hex')}\n` : `${name}=""\n`);
    parts.push('\n');
  }
  return parts.join('');
}

export class SetXattrError extends Error {
  /** The path setfattr names in its first error line, relative to the tree. */
  readonly path: string | undefined;
  /** The errno name of setfattr's first error (EIO when it names none). */
  readonly code: string;
  constructor(message: string, path: string | undefined, code: string) {
    super(message);
    this.name = 'SetXattrError';
    this.path = path;
    this.code = code;
  }
}

/** glibc's strerror texts for what setting xattrs fails with (Node's map has libuv's texts). */
const GLIBC_ERRNO: Record<string, string> = {
  'no space left on device': 'ENOSPC',
  'disk quota exceeded': 'EDQUOT',
  'operation not supported': 'ENOTSUP',
  'operation not permitted': 'EPERM',
  'permission denied': 'EACCES',
  'no such file or directory': 'ENOENT',
  'argument list too long': 'E2BIG',
  'numerical result out of range': 'ERANGE',
  'read-only file system': 'EROFS',
  'input/output error': 'EIO',
  'invalid argument': 'EINVAL',
};

/** The errno name for a strerror text (setfattr reports only the text); EIO if unknown. */
function errnoName(text: string): string {
  const lower = text.trim().toLowerCase();
  const known = GLIBC_ERRNO[lower];
  if (known) return known;
  for (const [, [name, strerror]] of getSystemErrorMap()) if (lower === strerror.toLowerCase()) return name;
  return 'EIO';
}

/** Restores `dump` below `cwd` with one setfattr process. */
export function restoreXattrs(cwd: string, dump: string): void {
  if (!dump) return;
  const setfattr = findProgram('setfattr');
  if (!setfattr) throw new MissingToolError('setfattr', 'attr');
  try {
    execFileSync(setfattr, ['-h', '--restore=-'], { cwd, input: dump, stdio: ['pipe', 'ignore', 'pipe'], maxBuffer: 1 << 24 });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    const first = stderr.split('\n')[0] ?? '';
    const m = /^setfattr: (.*): ([^:]+)$/.exec(first);
    const message = `setting extended attributes failed: ${stderr || (err as Error).message}`;
    // The errno from the text after the path (the archive names paths, and could name one like an error).
    throw new SetXattrError(message, m?.[1], errnoName(m?.[2] ?? ''));
  }
}
