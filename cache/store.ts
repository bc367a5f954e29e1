// The host's template store, under one root (default /var/lib/vztpl):
//   blobs/sha256/<hex>            compressed blobs: manifests, configs, layers
//   layers/sha256/<hex>/          a layer extracted once, by diff_id, read-only, overlay-ready
//   layers/sha256/<hex>.json      its size and entry count (for `templates` and pruning)
//   refs/<registry>/<name>/<version>.json   a pulled template version -> manifest, layers
//   refs/<registry>/<name>/<version>.sig    its signatures as pulled (payloads and signatures),
//                                 re-verified by each create the trust policy asks it of
//   trust/policy-<hash>.json      trust policies as checked (cache/trust-policy.ts)
//   containers/<ctid>/            container.json, config.json (OCI bundle), upper/, work/, rootfs/
//   locks/, tmp/                  cross-process locks; work in progress (swept when stale)
//
// Its file operations are synchronous: small metadata files on a local disk, where each async
// call would cost a thread-pool round trip, and `create` (a short-lived process on the
// provisioning path) would pay the fs/promises module load. Bulk data (layer blobs, extraction)
// streams elsewhere.
import { fs } from '../common/builtins.ts';
import { ExitCode, VztplError } from '../common/errors.ts';
import { join, resolve } from 'node:path';
import { digestHex, sha256, type Digest } from '../format/digest.ts';
import type { ImageConfig, ImageManifest } from '../format/oci.ts';

export const DEFAULT_ROOT = '/var/lib/vztpl';

/** Distinguishes this process's temporary files (no node:crypto on the create path). */
let tmpSequence = 0;

export interface LayerRecord {
  digest: Digest;
  diffId: Digest;
  mediaType: string;
  size: number;
}

export interface TemplateRef {
  /** Registry base URL, or oci:DIR for a layout directory. */
  source: string;
  name: string;
  version: string;
  manifestDigest: Digest;
  configDigest: Digest;
  layers: LayerRecord[];
  /** OCI config fields a container needs. */
  env: string[];
  cmd: string[];
  architecture: string;
  pulledAt: string;
  lastUsed: string;
  /** The index the manifest was picked from (for the host's platform), when there was one. */
  indexDigest?: Digest;
}

/**
 * A cached template's signatures, kept beside its ref as they were fetched: enough to verify
 * them again (offline) against whatever keys the trust policy names then.
 */
export interface KeptSignatures {
  /** The digest they sign: the manifest's, or the index's the manifest was picked from. */
  signedDigest: Digest;
  /** REGISTRY/NAME they must name. */
  repository: string;
  /** The index's bytes (base64) when signedDigest is an index's: it names the manifest. */
  index?: string;
  /** Where they were read from (REPOSITORY:sha256-<hex>.sig). */
  from: string;
  /** The signature manifest's layers, each with its payload (base64) or why it was not read. */
  signatures: Array<{ layer: { mediaType: string; digest: Digest; size: number; annotations?: Record<string, string> }; payload: string | { error: string } }>;
  /**
   * The key that verified one of them for this digest and repository (its fingerprint, and its
   * PEM text as the policy's key file held it), recorded when it did. A create whose policy names
   * a key file with exactly that text needs no node:crypto; any other key is verified anew.
   */
  verified?: { key: string; pem: string; layer: number };
  fetchedAt: string;
}

export interface LayerInfo {
  diffId: Digest;
  /** Bytes on disk (file sizes) of the extracted tree. */
  bytes: number;
  entries: number;
}

export class Store {
  readonly root: string;
  constructor(root: string) {
    // Absolute, so that paths handed to programs run elsewhere (mount, cp) mean the same.
    this.root = resolve(root);
  }

  blobPath(digest: Digest): string {
    return join(this.root, 'blobs', 'sha256', digestHex(digest));
  }
  hasBlob(digest: Digest): boolean {
    return fs.existsSync(this.blobPath(digest));
  }

  /** A small blob (manifest, config), checked against its digest; missing or damaged is an error naming `what`. */
  verifiedBlob(digest: Digest, what: string): Buffer {
    const bytes = this.hasBlob(digest) ? fs.readFileSync(this.blobPath(digest)) : undefined;
    if (!bytes || sha256(bytes) !== digest) throw new VztplError(`${what} ${digest} is not in the host's store: pull the template again`, ExitCode.notFound);
    return bytes;
  }

  /** A cached template's manifest and config (a container's, for commit and backup), checked against their digests. */
  templateImage(manifestDigest: Digest): { manifest: ImageManifest; config: ImageConfig } {
    const manifest = JSON.parse(this.verifiedBlob(manifestDigest, "the manifest of the container's template").toString('utf8')) as ImageManifest;
    const config = JSON.parse(this.verifiedBlob(manifest.config.digest, "the config of the container's template").toString('utf8')) as ImageConfig;
    return { manifest, config };
  }

  layerDir(diffId: Digest): string {
    return join(this.root, 'layers', 'sha256', digestHex(diffId));
  }
  layerInfoPath(diffId: Digest): string {
    return `${this.layerDir(diffId)}.json`;
  }
  lockPath(name: string): string {
    return join(this.root, 'locks', name);
  }
  tmpDir(): string {
    return join(this.root, 'tmp');
  }
  containersDir(): string {
    return join(this.root, 'containers');
  }
  containerDir(ctid: string): string {
    return join(this.root, 'containers', ctid);
  }

  /** refs/<source key>/<name>/<version>.json; the source key is the registry's host:port. */
  refPath(source: string, name: string, version: string): string {
    return join(this.root, 'refs', sourceKey(source), name, `${version}.json`);
  }

  /** refs/<source key>/<name>/<version>.sig: the signatures kept with that ref. */
  signaturesPath(source: string, name: string, version: string): string {
    return join(this.root, 'refs', sourceKey(source), name, `${version}.sig`);
  }

  async init(): Promise<void> {
    try {
      for (const d of ['blobs/sha256', 'layers/sha256', 'refs', 'containers', 'locks', 'tmp']) fs.mkdirSync(join(this.root, d), { recursive: true });
    } catch (err) {
      // A recursive mkdir on a read-only filesystem reports the missing child (ENOENT), not why.
      let why: NodeJS.ErrnoException | undefined;
      try {
        fs.accessSync(fs.existsSync(this.root) ? this.root : join(this.root, '..'), fs.constants.W_OK);
      } catch (access) {
        why = access as NodeJS.ErrnoException;
      }
      if (why?.code === 'EROFS') throw new VztplError(`the store ${this.root} is on a read-only filesystem`, ExitCode.failure, { cause: err });
      if (why?.code === 'EACCES') throw new VztplError(`the store ${this.root} is not writable by this user`, ExitCode.failure, { cause: err });
      throw err;
    }
  }

  /** A layer is present once its info file is: that is written after the rename into place. */
  async hasLayer(diffId: Digest): Promise<boolean> {
    return fs.existsSync(this.layerInfoPath(diffId));
  }

  async layerInfo(diffId: Digest): Promise<LayerInfo | undefined> {
    try {
      return JSON.parse(fs.readFileSync(this.layerInfoPath(diffId), 'utf8')) as LayerInfo;
    } catch {
      return undefined;
    }
  }

  /**
   * Writes a file whole or not at all: a temporary file in tmp/ (named with the pid, so a killed
   * process's leftovers are swept), renamed into place.
   */
  async writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
    fs.mkdirSync(join(path, '..'), { recursive: true });
    const tmp = join(this.tmpDir(), `file-${process.pid}-${Date.now()}-${++tmpSequence}`);
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, path);
  }

  async writeJson(path: string, value: unknown): Promise<void> {
    await this.writeFileAtomic(path, JSON.stringify(value, null, 1));
  }

  hasRef(ref: Pick<TemplateRef, 'source' | 'name' | 'version'>): boolean {
    return fs.existsSync(this.refPath(ref.source, ref.name, ref.version));
  }

  async saveRef(ref: TemplateRef): Promise<void> {
    await this.writeJson(this.refPath(ref.source, ref.name, ref.version), ref);
  }

  /** The signatures kept with a ref, or undefined (none were fetched, or they were for another digest). */
  readSignatures(ref: Pick<TemplateRef, 'source' | 'name' | 'version'>): KeptSignatures | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.signaturesPath(ref.source, ref.name, ref.version), 'utf8')) as KeptSignatures;
    } catch {
      return undefined;
    }
  }

  /** Keeps (or, with undefined, forgets) a ref's signatures; written before the ref itself. */
  async saveSignatures(ref: Pick<TemplateRef, 'source' | 'name' | 'version'>, kept: KeptSignatures | undefined): Promise<void> {
    const path = this.signaturesPath(ref.source, ref.name, ref.version);
    if (kept) await this.writeJson(path, kept);
    else fs.rmSync(path, { force: true });
  }

  /**
   * Marks a cached version as just used (least recently used ones are pruned first): the ref
   * file's mtime is the clock, so a create touches it rather than rewriting it.
   */
  async touchRef(ref: TemplateRef, when = new Date()): Promise<void> {
    fs.utimesSync(this.refPath(ref.source, ref.name, ref.version), when, when);
  }

  /** Every cached template version (with lastUsed from the ref file's mtime when that is later). */
  async refs(): Promise<TemplateRef[]> {
    const out: TemplateRef[] = [];
    const walk = (dir: string): void => {
      let entries;
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.json')) out.push(readRef(path));
      }
    };
    walk(join(this.root, 'refs'));
    return out;
  }

  async removeRef(ref: TemplateRef): Promise<void> {
    fs.rmSync(this.refPath(ref.source, ref.name, ref.version), { force: true });
    fs.rmSync(this.signaturesPath(ref.source, ref.name, ref.version), { force: true });
  }
}

function readRef(path: string): TemplateRef {
  const ref = JSON.parse(fs.readFileSync(path, 'utf8')) as TemplateRef;
  const touched = fs.statSync(path).mtime.toISOString();
  return touched > ref.lastUsed ? { ...ref, lastUsed: touched } : ref;
}

export function sourceKey(source: string): string {
  if (source.startsWith('oci:')) return `oci/${Buffer.from(source.slice(4)).toString('base64url')}`;
  return new URL(source).host.replace(/[^A-Za-z0-9._-]/g, '_');
}
