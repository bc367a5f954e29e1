// Node has no xattr API, so one getfattr process lists every extended attribute of a tree.
// Files without attributes cost nothing; the walk stays in Node.
import { execa } from 'execa';
import { findProgram } from '../../common/run.ts';
import { MissingToolError } from '../../common/errors.ts';

/** Map from absolute path to its extended attributes (name -> raw value). */
export type XattrIndex = Map<string, Map<string, Buffer>>;

export async function readXattrs(root: string): Promise<XattrIndex> {
  const getfattr = findProgram('getfattr');
  if (!getfattr) throw new MissingToolError('getfattr', 'attr');
  const result = await execa(getfattr, ['-R', '-P', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], {
    encoding: 'buffer',
    reject: false,
    maxBuffer: 1 << 30,
  });
  // getfattr exits 1 when some file has no attributes it may read; its output is still whole.
  if (result.exitCode !== 0 && result.exitCode !== 1) {
    throw new Error(`getfattr failed on ${root}: ${Buffer.from(result.stderr as Uint8Array).toString()}`);
  }
  return parseGetfattr(Buffer.from(result.stdout as Uint8Array).toString('latin1'));
}

/** Parses `getfattr -d -e hex --absolute-names` output (read as latin1 so bytes survive). */
export function parseGetfattr(text: string): XattrIndex {
  const index: XattrIndex = new Map();
  let current: Map<string, Buffer> | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = new Map();
      index.set(unescapeName(line.slice('# file: '.length)), current);
    } else if (current && line) {
      const eq = line.indexOf('=');
      const name = eq === -1 ? line : line.slice(0, eq);
      const value = eq === -1 ? '' : line.slice(eq + 1);
      current.set(name, value.startsWith('0x') ? Buffer.from(value.slice(2), 'hex') : Buffer.alloc(0));
    }
  }
  return index;
}

/** getfattr writes backslash as \\ and unprintable bytes as \ooo; names are bytes, read as UTF-8. */
function unescapeName(escaped: string): string {
  const bytes = Buffer.from(
    escaped.replace(/\\(\\|[0-7]{3})/g, (_, code: string) => (code === '\\' ? '\\' : String.fromCharCode(parseInt(code, 8)))),
    'latin1',
  );
  return bytes.toString('utf8');
}
