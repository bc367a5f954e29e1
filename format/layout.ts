// OCI image layout directories (image-spec layout.md): oci-layout, index.json, blobs/sha256/.
// `skopeo copy oci:DIR ...` reads what this writes.
import { copyFile, link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pidAlive } from '../common/pids.ts';
import { digestHex, sha256, type Digest } from './digest.ts';
import { canonicalJson, MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from './oci.ts';

export class OciLayout {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  blobPath(digest: Digest): string {
    return join(this.dir, 'blobs', 'sha256', digestHex(digest));
  }

  async init(): Promise<void> {
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(this.dir, 'oci-layout'), canonicalJson({ imageLayoutVersion: '1.0.0' }));
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    return stat(this.blobPath(digest)).then(
      () => true,
      () => false,
    );
  }

  /** Writes JSON content as a blob and returns its descriptor. */
  async writeJson(mediaType: string, value: unknown): Promise<Descriptor> {
    const bytes = canonicalJson(value);
    const digest = sha256(bytes);
    await writeFile(this.blobPath(digest), bytes);
    return { mediaType, digest, size: bytes.length };
  }

  /** Adds an existing blob file (already verified) by hard link, or by copy across filesystems. */
  async importBlob(file: string, digest: Digest): Promise<void> {
    const target = this.blobPath(digest);
    if (await this.hasBlob(digest)) return;
    try {
      await link(file, target);
    } catch {
      const tmp = `${target}.tmp`;
      await copyFile(file, tmp);
      await rename(tmp, target);
    }
  }

  async writeIndex(manifests: Descriptor[]): Promise<void> {
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.index, manifests };
    await writeFile(join(this.dir, 'index.json'), canonicalJson(index));
  }

  async readIndex(): Promise<ImageIndex> {
    return JSON.parse(await readFile(join(this.dir, 'index.json'), 'utf8')) as ImageIndex;
  }

  /** A small blob's bytes, verified against its digest. */
  async blobBytes(digest: Digest): Promise<Buffer> {
    const bytes = await readFile(this.blobPath(digest));
    if (sha256(bytes) !== digest) throw new Error(`${this.dir}: blob ${digest} does not match its digest`);
    return bytes;
  }

  async readJson<T>(digest: Digest): Promise<T> {
    return JSON.parse((await this.blobBytes(digest)).toString('utf8')) as T;
  }

  /** The manifest named `ref` (its ref.name annotation), or the only one when ref is omitted. */
  async resolve(ref?: string): Promise<{ descriptor: Descriptor; manifest: ImageManifest; config: ImageConfig }> {
    const index = await this.readIndex();
    const candidates = ref ? index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref) : index.manifests;
    if (candidates.length !== 1) {
      throw new Error(
        ref
          ? `${this.dir}: no image named ${ref} (have: ${index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'] ?? m.digest).join(', ')})`
          : `${this.dir}: holds ${candidates.length} images; name one`,
      );
    }
    const descriptor = candidates[0]!;
    const manifest = await this.readJson<ImageManifest>(descriptor.digest);
    const config = await this.readJson<ImageConfig>(manifest.config.digest);
    return { descriptor, manifest, config };
  }
}

/**
 * Finishes what a killed writer of the same layout left beside it: a layout it had moved aside
 * to put its own in place goes back (as before the write), and its temporaries go.
 */
async function recoverKilledWriters(dir: string): Promise<void> {
  const own = new RegExp(`^${basename(dir).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(tmp|old)-(\\d+)$`);
  await mkdir(dirname(dir), { recursive: true });
  for (const name of await readdir(dirname(dir))) {
    const m = own.exec(name);
    if (!m || Number(m[2]) === process.pid || pidAlive(Number(m[2]))) continue;
    const path = join(dirname(dir), name);
    if (m[1] === 'old' && !(await stat(dir).then(() => true, () => false))) await rename(path, dir);
    else await rm(path, { recursive: true, force: true });
  }
}

/**
 * Writes a layout into a temporary sibling and renames it over `dir` only when it is complete,
 * so a failed or interrupted build never leaves a half-written output.
 */
export async function writeLayoutAtomically(dir: string, fill: (layout: OciLayout) => Promise<void>): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  await recoverKilledWriters(dir);
  await rm(tmp, { recursive: true, force: true });
  try {
    const layout = new OciLayout(tmp);
    await layout.init();
    await fill(layout);
    const old = `${dir}.old-${process.pid}`;
    const hadOld = await rename(dir, old).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return false;
        throw err;
      },
    );
    await rename(tmp, dir);
    if (hadOld) await rm(old, { recursive: true, force: true });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
