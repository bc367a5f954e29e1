// An independent OCI layer applier for the tests: reads an image layout's manifest, and extracts
// its layers in order into a directory with tar-stream, as a container runtime would
// (image-spec layer.md): `.wh.NAME` deletes NAME from the layers below, `.wh..wh..opq` empties
// a directory of what the layers below put there, and every entry keeps its type, mode,
// uid/gid, mtime, link target, device numbers and SCHILY.xattr records.
// It shares no code with the builder's packer, so it can check it.
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import tar, { type Header } from 'tar-stream';

/** tar-stream's header, with the pax records it decoded (as UTF-8 strings). */
export type TarHeader = Omit<Header, 'pax'> & { pax?: Record<string, string> | null };

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface LayoutImage {
  manifestDigest: string;
  manifest: { layers: Descriptor[]; config: Descriptor };
  config: Record<string, unknown> & { rootfs: { diff_ids: string[] } };
}

const blobPath = (layout: string, digest: string) => join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));

/** The one image of a layout, read without the product's OciLayout. */
export async function readLayoutImage(layout: string): Promise<LayoutImage> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  if (index.manifests.length !== 1) throw new Error(`${layout}: ${index.manifests.length} manifests`);
  const manifestDigest = index.manifests[0]!.digest;
  const manifest = JSON.parse(await readFile(blobPath(layout, manifestDigest), 'utf8')) as LayoutImage['manifest'];
  const config = JSON.parse(await readFile(blobPath(layout, manifest.config.digest), 'utf8')) as LayoutImage['config'];
  return { manifestDigest, manifest, config };
}

function decompressor(mediaType: string): Transform | undefined {
  if (mediaType.endsWith('+zstd')) return zlib.createZstdDecompress();
  if (mediaType.endsWith('+gzip')) return zlib.createGunzip();
  if (mediaType.endsWith('.tar')) return undefined;
  throw new Error(`unknown layer media type ${mediaType}`);
}

/** The uncompressed tar of a layer blob. */
export async function layerTar(layout: string, layer: Descriptor): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const dec = decompressor(layer.mediaType);
  const source = createReadStream(blobPath(layout, layer.digest));
  const collect = async (s: AsyncIterable<Buffer>): Promise<void> => {
    for await (const c of s) chunks.push(c);
  };
  if (dec) await pipeline(source, dec, collect);
  else await collect(source);
  return Buffer.concat(chunks);
}

export interface TarItem {
  header: TarHeader;
  data: Buffer;
  /** SCHILY.xattr.* records as raw bytes (tar-stream's pax strings are UTF-8 decoded). */
  xattrs: Map<string, Buffer>;
}

/** Entries of a tar archive as tar-stream decodes them, with their data and raw xattrs. */
export async function readTar(tarBytes: Buffer): Promise<TarItem[]> {
  const extract = tar.extract();
  const out: TarItem[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.push({ header: entry.header as TarHeader, data: Buffer.concat(chunks), xattrs: new Map() });
    }
  })();
  await Promise.all([pipeline(Readable.from([tarBytes]), extract as unknown as NodeJS.WritableStream), done]);
  const raw = rawXattrs(tarBytes);
  if (raw.count !== out.length) throw new Error(`tar scan found ${raw.count} entries, tar-stream ${out.length}`);
  for (const [i, xattrs] of raw.byEntry) out[i]!.xattrs = xattrs;
  return out;
}

const PAD = (n: number) => (n % 512 === 0 ? 0 : 512 - (n % 512));

/**
 * A minimal scan of the archive's headers for the raw bytes of SCHILY.xattr pax records
 * (binary values such as system.posix_acl_access or security.capability), by entry index.
 */
function rawXattrs(buf: Buffer): { count: number; byEntry: Map<number, Map<string, Buffer>> } {
  const byEntry = new Map<number, Map<string, Buffer>>();
  let off = 0;
  let count = 0;
  let pending: Map<string, Buffer> | undefined;
  let paxSize: number | undefined;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const type = String.fromCharCode(h[156]!);
    let size = parseInt(h.subarray(124, 136).toString('latin1').replace(/[\0 ]+$/g, '') || '0', 8);
    off += 512;
    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      if (type === 'x') {
        const records = paxRecords(buf.subarray(off, off + size));
        pending = new Map([...records].filter(([k]) => k.startsWith('SCHILY.xattr.')).map(([k, v]) => [k.slice('SCHILY.xattr.'.length), v]));
        const s = records.get('size');
        paxSize = s === undefined ? undefined : Number(s.toString());
      }
      off += size + PAD(size);
      continue;
    }
    if (pending?.size) byEntry.set(count, pending);
    if (paxSize !== undefined) size = paxSize;
    pending = undefined;
    paxSize = undefined;
    const data = type === '5' ? 0 : size;
    off += data + PAD(data);
    count++;
  }
  return { count, byEntry };
}

function paxRecords(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space === -1) break;
    const len = parseInt(data.subarray(i, space).toString('latin1'), 10);
    if (!(len > 0)) break;
    const record = data.subarray(space + 1, i + len - 1); // without the trailing newline
    const eq = record.indexOf(0x3d);
    out.set(record.subarray(0, eq).toString('utf8'), Buffer.from(record.subarray(eq + 1)));
    i += len;
  }
  return out;
}

const exists = (p: string) => lstat(p).then(
  (st) => st,
  () => undefined,
);

/** Normalizes a tar name: no leading ./ or /, no trailing /; refuses '..'. */
function cleanName(name: string): string {
  const n = posix.normalize(name.replace(/^(\.\/)+/, '').replace(/^\/+/, '')).replace(/\/+$/, '');
  if (n === '..' || n.startsWith('../')) throw new Error(`layer entry escapes the root: ${name}`);
  return n === '.' ? '' : n;
}

/** Every parent of rel must be a real directory in root (never write through a symlink). */
async function checkParents(root: string, rel: string, known: Set<string>): Promise<void> {
  const parts = rel.split('/').slice(0, -1);
  for (let i = 1; i <= parts.length; i++) {
    const p = parts.slice(0, i).join('/');
    if (known.has(p)) continue;
    const st = await exists(join(root, p));
    if (!st) throw new Error(`layer entry ${rel}: parent ${p} does not exist`);
    if (!st.isDirectory()) throw new Error(`layer entry ${rel}: parent ${p} is not a directory`);
    known.add(p);
  }
}

export interface ApplyStats {
  entries: number;
  whiteouts: string[];
  opaques: string[];
}

/** Applies one layer's tar to root. */
export async function applyLayerTar(root: string, tarBytes: Buffer): Promise<ApplyStats> {
  const stats: ApplyStats = { entries: 0, whiteouts: [], opaques: [] };
  const thisLayer = new Set<string>();
  const dirTimes: [string, number][] = [];
  /** Paths known to be directories; forgotten whenever something is deleted. */
  const knownDirs = new Set<string>();
  for (const { header, data, xattrs } of await readTar(tarBytes)) {
    stats.entries++;
    const rel = cleanName(header.name);
    const base = posix.basename(rel);
    const parent = posix.dirname(rel) === '.' ? '' : posix.dirname(rel);
    if (base === '.wh..wh..opq') {
      // Opaque: the directory keeps only what this layer puts in it.
      stats.opaques.push(parent);
      knownDirs.clear();
      for (const name of await readdir(join(root, parent))) {
        const child = parent ? `${parent}/${name}` : name;
        const fromThisLayer = [...thisLayer].some((p) => p === child || p.startsWith(`${child}/`));
        if (!fromThisLayer) await rm(join(root, child), { recursive: true, force: true });
      }
      continue;
    }
    if (base.startsWith('.wh.')) {
      const target = parent ? `${parent}/${base.slice(4)}` : base.slice(4);
      stats.whiteouts.push(target);
      knownDirs.clear();
      if (!(await exists(join(root, target)))) throw new Error(`whiteout ${rel} deletes ${target}, which no lower layer has`);
      await rm(join(root, target), { recursive: true, force: true });
      continue;
    }
    if (rel === '') continue;
    await checkParents(root, rel, knownDirs);
    thisLayer.add(rel);
    const abs = join(root, rel);
    const pax = header.pax ?? {};
    const uid = pax.uid !== undefined ? Number(pax.uid) : (header.uid ?? 0);
    const gid = pax.gid !== undefined ? Number(pax.gid) : (header.gid ?? 0);
    const mode = (header.mode ?? 0) & 0o7777;
    const mtime = (header.mtime ?? new Date(0)).getTime() / 1000;
    const old = await exists(abs);
    if (old && !(old.isDirectory() && header.type === 'directory')) {
      await rm(abs, { recursive: true, force: true });
      knownDirs.clear();
    }
    switch (header.type) {
      case 'directory':
        if (!old?.isDirectory()) await mkdir(abs);
        dirTimes.push([abs, mtime]);
        break;
      case 'file':
      case 'contiguous-file':
        await writeFile(abs, data);
        break;
      case 'link': {
        const target = join(root, cleanName(header.linkname ?? ''));
        await link(target, abs);
        continue; // a hard link shares the first name's metadata
      }
      case 'symlink':
        await symlink(header.linkname ?? '', abs);
        break;
      case 'character-device':
      case 'block-device':
        execFileSync('mknod', [abs, header.type === 'character-device' ? 'c' : 'b', String(header.devmajor ?? 0), String(header.devminor ?? 0)]);
        break;
      case 'fifo':
        execFileSync('mkfifo', [abs]);
        break;
      default:
        throw new Error(`layer entry ${rel}: unsupported type ${header.type}`);
    }
    await lchown(abs, uid, gid);
    if (header.type !== 'symlink') await chmod(abs, mode); // after chown, which clears setuid
    for (const [name, value] of xattrs) execFileSync('setfattr', ['-h', '-n', name, '-v', `0x${value.toString('hex')}`, abs]);
    if (header.type === 'symlink') await lutimes(abs, mtime, mtime);
    else if (header.type !== 'directory') await utimes(abs, mtime, mtime);
  }
  // Directories last, deepest first: creating their children changed their mtimes.
  for (const [abs, mtime] of dirTimes.sort((a, b) => b[0].length - a[0].length)) await utimes(abs, mtime, mtime);
  return stats;
}

/** Applies every layer of the layout's image to root, in order. */
export async function applyLayout(layout: string, root: string): Promise<{ image: LayoutImage; layers: ApplyStats[] }> {
  const image = await readLayoutImage(layout);
  await mkdir(root, { recursive: true });
  const layers: ApplyStats[] = [];
  for (const layer of image.manifest.layers) layers.push(await applyLayerTar(root, await layerTar(layout, layer)));
  return { image, layers };
}
