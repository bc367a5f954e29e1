// The OCI image format (image-spec v1.1) as vztpl writes and reads it: media types, the
// manifest, the image config (with vztpl's template metadata) and the layout index.
import type { Digest } from './digest.ts';

/** Layer whiteouts (image-spec layer.md): `.wh.NAME` deletes NAME from the layers below... */
export const WHITEOUT_PREFIX = '.wh.';
/** ...and `.wh..wh..opq` in a directory hides what the layers below put in it. */
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

export const MediaType = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export type Compression = 'zstd' | 'gzip';

export function layerMediaType(compression: Compression): string {
  return compression === 'zstd' ? MediaType.layerZstd : MediaType.layerGzip;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  artifactType?: string;
  platform?: { architecture: string; os: string; variant?: string };
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: typeof MediaType.manifest;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
  artifactType?: string;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: typeof MediaType.index;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface LockedPackage {
  name: string;
  version: string;
  arch: string;
}

/** What vztpl adds to the image config: how the template was made and what it contains. */
export interface TemplateMetadata {
  name: string;
  version: string;
  distro: string;
  release: string;
  arch: string;
  flavor?: string;
  /** sha256 of the recipe file(s) the template was built from. */
  recipeDigest: Digest;
  /** Package manager family: deb or rpm. */
  family: 'deb' | 'rpm';
  /** Every installed package with its exact version. */
  packages: LockedPackage[];
  /** Set by `vztpl publish`: what changed since the version before (builder/publish.ts). */
  changelog?: TemplateChangelog;
  /** Set by `vztpl publish`: the content apart from dates, to compare the next build with. */
  content?: { digest: Digest; layers: Digest[] };
}

/** A package whose version changed between two versions of a template. */
export interface PackageChange {
  name: string;
  arch: string;
  from: string;
  to: string;
}

/** What changed in a version since the one before it. */
export interface TemplateChangelog {
  /** The version compared with; absent for the first version. */
  previous?: string;
  /** The recipe files (base to flavor) differ from the previous version's. */
  recipeChanged: boolean;
  added: LockedPackage[];
  removed: LockedPackage[];
  /** Every package whose version changed (an older version shows here too, from -> to). */
  upgraded: PackageChange[];
}

export interface ImageConfig {
  created?: string;
  architecture: string;
  os: string;
  config?: {
    Env?: string[];
    Cmd?: string[];
    Labels?: Record<string, string>;
    WorkingDir?: string;
  };
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  /** vztpl's template metadata; other OCI clients ignore unknown config fields. */
  'org.openvz.template'?: TemplateMetadata;
}

/** OCI architecture names for OpenVZ/RPM ones. */
export function ociArchitecture(arch: string): string {
  const map: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64', i386: '386', ppc64le: 'ppc64le', s390x: 's390x' };
  return map[arch] ?? arch;
}

/** Template labels, as OCI annotations/labels, that hosts and the catalog search on. */
export const Label = {
  distro: 'org.openvz.template.distro',
  release: 'org.openvz.template.release',
  arch: 'org.openvz.template.arch',
  flavor: 'org.openvz.template.flavor',
  recipeDigest: 'org.openvz.template.recipe-digest',
  title: 'org.opencontainers.image.title',
  version: 'org.opencontainers.image.version',
  created: 'org.opencontainers.image.created',
  refName: 'org.opencontainers.image.ref.name',
} as const;

/**
 * Canonical JSON for content that is hashed: keys in insertion order (our writers build objects
 * in a fixed order), no whitespace. Same input, same bytes, same digest.
 */
export function canonicalJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}
