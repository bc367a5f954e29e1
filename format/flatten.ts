// Flattens an image's layers into the single root filesystem tarball that existing hosts
// expect (OpenVZ's template cache, Proxmox's vztmpl). Two passes over the layers, no extraction:
// the first, top layer down, finds which layer's entry is visible at each path (whiteouts and
// opaque directories applied); the second, bottom up, copies exactly those entries.
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { createDecompressor } from './compress.ts';
import { encodeHeader, END_OF_ARCHIVE, padding, type TarEntry } from './tar/header.ts';
import { readTar } from './tar/read.ts';
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX, type Descriptor } from './oci.ts';

export type ChunkSink = (chunk: Buffer) => Promise<void>;

function layerStream(blobPath: string, layer: Descriptor): AsyncIterable<Buffer> {
  const file = createReadStream(blobPath, { highWaterMark: 1 << 20 });
  const decompressor = createDecompressor(layer.mediaType);
  return decompressor ? file.pipe(decompressor) : file;
}

function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let d = posix.dirname(path); d !== '.' && d !== '/' && d !== ''; d = posix.dirname(d)) out.push(d);
  return out;
}

/** Which layer provides each visible path (index into `layers`). */
export async function visibleEntries(layers: readonly Descriptor[], blobPath: (d: Descriptor) => string): Promise<Map<string, number>> {
  const visible = new Map<string, number>();
  // What upper layers hide from the layers below them.
  const deleted = new Set<string>();
  const opaque = new Set<string>();
  const nonDirs = new Set<string>();
  const hidden = (path: string) => deleted.has(path) || ancestors(path).some((a) => deleted.has(a) || opaque.has(a) || nonDirs.has(a));
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i]!;
    const newDeleted: string[] = [];
    const newOpaque: string[] = [];
    const newNonDirs: string[] = [];
    for await (const { entry } of readTar(layerStream(blobPath(layer), layer))) {
      const base = posix.basename(entry.path);
      const dir = posix.dirname(entry.path);
      if (base === OPAQUE_WHITEOUT) {
        newOpaque.push(dir);
        continue;
      }
      if (base.startsWith(WHITEOUT_PREFIX)) {
        newDeleted.push(dir === '.' ? base.slice(WHITEOUT_PREFIX.length) : `${dir}/${base.slice(WHITEOUT_PREFIX.length)}`);
        continue;
      }
      if (entry.path === '' || hidden(entry.path)) continue;
      if (!visible.has(entry.path)) visible.set(entry.path, i);
      if (entry.type !== 'dir') newNonDirs.push(entry.path);
    }
    newDeleted.forEach((p) => deleted.add(p));
    newOpaque.forEach((p) => opaque.add(p));
    newNonDirs.forEach((p) => nonDirs.add(p));
  }
  return visible;
}

/** Writes the flattened tar (uncompressed) to `sink`, bottom layer first. */
export async function flattenLayers(layers: readonly Descriptor[], blobPath: (d: Descriptor) => string, sink: ChunkSink): Promise<{ entries: number; bytes: number }> {
  const visible = await visibleEntries(layers, blobPath);
  let entries = 0;
  let bytes = 0;
  const write = async (buf: Buffer) => {
    bytes += buf.length;
    await sink(buf);
  };
  for (const [i, layer] of layers.entries()) {
    for await (const { entry, body } of readTar(layerStream(blobPath(layer), layer))) {
      if (visible.get(entry.path) !== i) continue;
      const out: TarEntry = entry;
      await write(encodeHeader(out));
      if (out.type === 'file' && out.size > 0) {
        for await (const chunk of body()) await write(chunk);
        const pad = padding(out.size);
        if (pad) await write(Buffer.alloc(pad));
      }
      entries++;
    }
  }
  await write(END_OF_ARCHIVE);
  return { entries, bytes };
}
