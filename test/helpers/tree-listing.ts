// A comparable listing of a directory tree: one line per entry with its path, type, mode,
// uid, gid, size, content digest, link target, device numbers, mtime (clamped to an epoch,
// whole seconds), hard-link group and extended attributes. Two trees are the same template when
// their listings are equal. Runs in-process (listTree) or as a program inside a mount namespace
// (`node tree-listing.ts ROOT EPOCH` prints the JSON listing), which is how an overlayfs view of
// the build's own layer trees is listed (listOverlay).
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function typeOf(mode: number): string {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o020000:
      return 'char';
    case 0o060000:
      return 'block';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    default:
      return 'unknown';
  }
}

/** xattrs of every file, by path relative to root (getfattr's escaping), overlay's own excluded. */
function xattrsOf(root: string): Map<string, string[]> {
  let text = '';
  try {
    text = execFileSync('getfattr', ['-R', '-P', '-d', '-m', '-', '-e', 'hex', '.'], { cwd: root, maxBuffer: 1 << 30, encoding: 'latin1', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (err) {
    // Exit 1 when some file has no readable attributes; the output is still complete.
    text = ((err as { stdout?: string }).stdout ?? '').toString();
  }
  const map = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = [];
      map.set(line.slice('# file: '.length).replace(/^\.\//, ''), current);
    } else if (current && line && !line.startsWith('trusted.overlay.') && !line.startsWith('user.overlay.')) {
      current.push(line);
    }
  }
  return map;
}

export function listTree(root: string, epoch: number): string[] {
  const xattrs = xattrsOf(root);
  const rows: { rel: string; fields: string[]; inode?: string }[] = [];
  const linkGroups = new Map<string, string[]>();
  const visit = (dirRel: string): void => {
    for (const name of readdirSync(dirRel ? join(root, dirRel) : root).sort(byteOrder)) {
      const rel = dirRel ? `${dirRel}/${name}` : name;
      const abs = join(root, rel);
      const st = lstatSync(abs, { bigint: true });
      const mode = Number(st.mode);
      const type = typeOf(mode);
      const mtime = Math.min(Number(st.mtimeMs / 1000n), epoch);
      let content = '';
      if (type === 'file') content = createHash('sha256').update(readFileSync(abs)).digest('hex');
      else if (type === 'symlink') content = `-> ${readlinkSync(abs, 'utf8')}`;
      else if (type === 'char' || type === 'block') content = `dev ${Number(st.rdev)}`;
      const size = type === 'file' ? String(st.size) : '-';
      const xa = (xattrs.get(rel) ?? []).join(',');
      const row = { rel, fields: [rel, type, (mode & 0o7777).toString(8).padStart(4, '0'), `${st.uid}:${st.gid}`, size, content, `mtime ${mtime}`, xa ? `xattrs ${xa}` : ''] };
      if (type === 'file' && st.nlink > 1n) {
        const inode = `${st.dev}:${st.ino}`;
        (row as { inode?: string }).inode = inode;
        linkGroups.set(inode, [...(linkGroups.get(inode) ?? []), rel]);
      }
      rows.push(row);
      if (type === 'dir') visit(rel);
    }
  };
  visit('');
  return rows.map((r) => {
    // Hard links: the other names sharing this file (not nlink, which names outside the tree count).
    const others = r.inode ? (linkGroups.get(r.inode) ?? []).filter((p) => p !== r.rel) : [];
    return [...r.fields, others.length ? `links ${others.join(' ')}` : ''].join('\t').trimEnd();
  });
}

const SELF = fileURLToPath(import.meta.url);

/**
 * Lists the read-only overlayfs of `lowers` (topmost first), mounted in a private mount
 * namespace that disappears with the listing process.
 */
export function listOverlay(lowers: readonly string[], mountpoint: string, epoch: number): Promise<string[]> {
  if (lowers.length < 2) throw new Error('a read-only overlay needs at least two lower dirs');
  const options = `lowerdir=${lowers.join(':')},redirect_dir=off,metacopy=off,index=off,xino=off`;
  const script = 'set -e; mount -t overlay vztpl-test-view -o "$1" "$2"; exec "$3" "$4" "$2" "$5"';
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', script, 'sh', options, mountpoint, process.execPath, SELF, String(epoch)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`listing the overlay failed (${code}): ${err}`));
      else resolve(JSON.parse(Buffer.concat(out).toString('utf8')) as string[]);
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [root, epoch] = process.argv.slice(2);
  if (!root || !epoch) throw new Error('usage: tree-listing.ts ROOT EPOCH');
  process.stdout.write(JSON.stringify(listTree(root, Number(epoch))));
}
