// Where things live in storage, laid out like CNCF Distribution's registry/storage/paths.go:
// blobs (and manifests, which are blobs too) once, globally, by digest; per repository only
// small link files, so a layer shared by many templates is stored once.
//
// Paths are parsed only here, next to where they are built (parsePath): whoever walks storage
// asks what a path it met is, and each answer is checked by building the path again.
import { digestHex, isDigest, type Digest } from '../../format/digest.ts';

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
  /** What deleting a layer link deletes: the link and its directory. */
  layerLinkDir: (repo: string, digest: Digest) => `${ROOT}/repositories/${repo}/_layers/sha256/${digestHex(digest)}`,
  manifestRevisionLink: (repo: string, digest: Digest) => `${ROOT}/repositories/${repo}/_manifests/revisions/sha256/${digestHex(digest)}/link`,
  /** What deleting a manifest revision deletes: its link and its directory. */
  manifestRevision: (repo: string, digest: Digest) => `${ROOT}/repositories/${repo}/_manifests/revisions/sha256/${digestHex(digest)}`,
  manifestRevisions: (repo: string) => `${ROOT}/repositories/${repo}/_manifests/revisions/sha256`,
  tagLink: (repo: string, tag: string) => `${ROOT}/repositories/${repo}/_manifests/tags/${tag}/current/link`,
  tagDir: (repo: string, tag: string) => `${ROOT}/repositories/${repo}/_manifests/tags/${tag}`,
  tags: (repo: string) => `${ROOT}/repositories/${repo}/_manifests/tags`,
  referrers: (repo: string, subject: Digest) => `${ROOT}/repositories/${repo}/_manifests/referrers/sha256/${digestHex(subject)}`,
  /** The directory of a subject's referrer links (referrerLink's). */
  referrerLinks: (repo: string, subject: Digest) => `${ROOT}/repositories/${repo}/_manifests/referrers/sha256/${digestHex(subject)}/sha256`,
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

/** `sha256:<hex>` when `hex` makes a digest. */
function sha256Of(hex: string | undefined): Digest | undefined {
  const digest = `sha256:${hex}`;
  return hex !== undefined && isDigest(digest) ? digest : undefined;
}

/** A path below the root, in the shape the builders above give it. */
const underRoot = (rest: string) => new RegExp(`^${ROOT}/${rest}$`);
const BLOB_DATA = underRoot('blobs/sha256/[a-f0-9]{2}/([a-f0-9]{64})/data');
const TRASH_DATA = underRoot('_trash/sha256/[a-f0-9]{2}/([a-f0-9]{64})/data');
const LAYER_LINK = underRoot('repositories/(.+)/_layers/sha256/([a-f0-9]{64})/link');
const UPLOAD_STATE = underRoot('repositories/(.+)/_uploads/([^/]+)/state');

/**
 * What a storage path met while walking or listing is, as the builders above made it; undefined
 * for any other path. Every answer is the one that builds the path again.
 */
export const parsePath = {
  /** The blob whose data is at `path` (paths.blobData). */
  blobData(path: string): Digest | undefined {
    const digest = sha256Of(BLOB_DATA.exec(path)?.[1]);
    return digest && paths.blobData(digest) === path ? digest : undefined;
  },
  /** The blob set aside whose data is at `path` (paths.trashData). */
  trashData(path: string): Digest | undefined {
    const digest = sha256Of(TRASH_DATA.exec(path)?.[1]);
    return digest && paths.trashData(digest) === path ? digest : undefined;
  },
  /**
   * The digest a link in directory `dir` is named by: `dir` is paths.manifestRevisions(repo)
   * (manifestRevisionLink's) or paths.referrerLinks(repo, subject) (referrerLink's).
   */
  digestLink(dir: string, path: string): Digest | undefined {
    if (!path.startsWith(`${dir}/`)) return undefined;
    return sha256Of(/^([a-f0-9]{64})\/link$/.exec(path.slice(dir.length + 1))?.[1]);
  },
  /** The repository and digest of a layer link (paths.layerLink). */
  layerLink(path: string): { repo: string; digest: Digest } | undefined {
    const m = LAYER_LINK.exec(path);
    const digest = sha256Of(m?.[2]);
    return m && digest && paths.layerLink(m[1]!, digest) === path ? { repo: m[1]!, digest } : undefined;
  },
  /** The upload whose state is at `path` (paths.uploadState). */
  uploadState(path: string): { repo: string; id: string } | undefined {
    const m = UPLOAD_STATE.exec(path);
    return m && paths.uploadState(m[1]!, m[2]!) === path ? { repo: m[1]!, id: m[2]! } : undefined;
  },
};

/** OCI repository names: path components of [a-z0-9] separated by . _ __ or -, joined by '/'. */
export const REPOSITORY_NAME = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
export const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Names that would collide with the storage layout's own directories. */
export function isReservedComponent(repo: string): boolean {
  return repo.split('/').some((c) => c.startsWith('_'));
}
