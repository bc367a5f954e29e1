// What debootstrap and mmdebstrap share: the Debian archive's metadata and architecture names.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { sha256, type Digest } from '../../format/digest.ts';
import { VztplError } from '../../common/errors.ts';
import type { DebianBootstrapSpec } from '../recipe/schema.ts';

export function debianArch(arch: string): string {
  const map: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64', i386: 'i386', ppc64le: 'ppc64el', s390x: 's390x' };
  const deb = map[arch];
  if (!deb) throw new VztplError(`no Debian architecture for ${arch}`);
  return deb;
}

/** Reads a URL of the mirror: http(s) with fetch, file:// from disk. */
export async function readMirrorFile(url: string, signal: AbortSignal): Promise<Buffer> {
  if (url.startsWith('file://')) return readFile(fileURLToPath(url));
  const res = await fetch(url, { signal, redirect: 'follow' }).catch((err: Error) => {
    throw new VztplError(`cannot reach ${url}: ${err.message}`);
  });
  if (!res.ok) throw new VztplError(`${url}: HTTP ${res.status} ${res.statusText}`);
  return Buffer.from(await res.arrayBuffer());
}

/**
 * Digest of the suite's InRelease: it names the hash of every index, so any change to the
 * archive's packages changes it, and the step cache rebuilds.
 */
export async function inReleaseDigest(spec: DebianBootstrapSpec, signal: AbortSignal): Promise<{ digest: Digest; date?: Date }> {
  const url = `${spec.mirror.replace(/\/+$/, '')}/dists/${spec.suite}/InRelease`;
  const bytes = await readMirrorFile(url, signal);
  const dateLine = /^Date: (.+)$/m.exec(bytes.toString('utf8'));
  const date = dateLine ? new Date(dateLine[1]!) : undefined;
  return { digest: sha256(bytes), date: date && !Number.isNaN(date.getTime()) ? date : undefined };
}
