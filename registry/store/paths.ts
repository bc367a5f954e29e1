// Where things live in storage, laid out like CNCF Distribution's registry/storage/paths.go:
// blobs (and manifests, which are blobs too) once, globally, by digest; per repository only
// small link files, so a layer shared by many templates is stored once.
import { digestHex, type Digest } from '../../format/digest.ts';

const ROOT = '/v2';

function hexPath(digest: Digest): string {
  const hex = digestHex(digest);
  return `sha256/${hex.slice(0, 2)}/${hex}`;
}

export const paths = {
  blobData: (digest: Digest) => `${ROOT}/blobs/${hexPath(digest)}/data`,
  blobsRoot: () => `${ROOT}/blobs`,
  repositoriesRoot: () => `${ROOT}/repositories`,
  repository: (repo: string) => `${ROOT}/repositories/${repo}`,
  layerLink: (repo: string, digest: Digest) => `${ROOT}/repositories/${repo}/_layers/sha256/${digestHex(digest)}/link`,
  manifestRevisionLink: (repo: string, digest: Digest) => `${ROOT}/repositories/${repo}/_manifests/revisions/sha256/${digestHex(digest)}/link`,
  manifestRevisions: (repo: string) => `${ROOT}/repositories/${repo}/_manifests/revisions/sha256`,
  tagLink: (repo: string, tag: string) => `${ROOT}/repositories/${repo}/_manifests/tags/${tag}/current/link`,
  tagDir: (repo: string, tag: string) => `${ROOT}/repositories/${repo}/_manifests/tags/${tag}`,
  tags: (repo: string) => `${ROOT}/repositories/${repo}/_manifests/tags`,
  referrers: (repo: string, subject: Digest) => `${ROOT}/repositories/${repo}/_manifests/referrers/sha256/${digestHex(subject)}`,
  referrerLink: (repo: string, subject: Digest, referrer: Digest) =>
    `${ROOT}/repositories/${repo}/_manifests/referrers/sha256/${digestHex(subject)}/sha256/${digestHex(referrer)}/link`,
  upload: (repo: string, id: string) => `${ROOT}/repositories/${repo}/_uploads/${id}`,
  uploadState: (repo: string, id: string) => `${ROOT}/repositories/${repo}/_uploads/${id}/state`,
  uploadChunk: (repo: string, id: string, n: number) => `${ROOT}/repositories/${repo}/_uploads/${id}/chunk-${String(n).padStart(6, '0')}`,
  uploads: (repo: string) => `${ROOT}/repositories/${repo}/_uploads`,
  /** Blobs garbage collection set aside; restored by anyone who needs them, deleted later. */
  trashData: (digest: Digest) => `${ROOT}/_trash/${hexPath(digest)}/data`,
  trashMark: (digest: Digest) => `${ROOT}/_trash/${hexPath(digest)}/trashed-at`,
  trashEntry: (digest: Digest) => `${ROOT}/_trash/${hexPath(digest)}`,
  trashRoot: () => `${ROOT}/_trash`,
};

/** OCI repository names: path components of [a-z0-9] separated by . _ __ or -, joined by '/'. */
export const REPOSITORY_NAME = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
export const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Names that would collide with the storage layout's own directories. */
export function isReservedComponent(repo: string): boolean {
  return repo.split('/').some((c) => c.startsWith('_'));
}
