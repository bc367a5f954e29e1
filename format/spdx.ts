// A template's package lock as an SPDX 2.3 JSON document (its SBOM), and the OCI 1.1 artifact
// that carries it beside the template's manifest as a referrer (image-spec 1.1 "artifacts"
// guidance: artifactType, the empty config, one layer, subject).
//
// Pure and deterministic: the same image gives the same bytes, so pushing a version again
// finds its SBOM there already. Nothing here reads the clock: `created` is the image's
// creation time, and the document namespace is derived from the manifest digest.
//
// What the lock has is what the document says: name, version and architecture of each package.
// Suppliers, licenses and download locations are not in the lock, so they are NOASSERTION
// (SPDX's "the creator makes no assertion"), never guessed.
import { digestHex, sha256, type Digest } from './digest.ts';
import { MediaType, ociArchitecture, type Descriptor, type LockedPackage, type TemplateMetadata } from './oci.ts';

export const SPDX_MEDIA_TYPE = 'application/spdx+json';
export const SPDX_VERSION = 'SPDX-2.3';
/** image-spec 1.1's empty descriptor: the config of an artifact that has none. */
export const EMPTY_CONFIG = {
  mediaType: 'application/vnd.oci.empty.v1+json',
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' as Digest,
  size: 2,
} as const;
export const EMPTY_CONFIG_BYTES = Buffer.from('{}');
/** Where the namespaces of vztpl's SPDX documents live (a URI; SPDX asks for one unique per document). */
export const NAMESPACE_BASE = 'https://openvz.org/vztpl/spdx';
const NOASSERTION = 'NOASSERTION';

export interface SpdxExternalRef {
  referenceCategory: 'PACKAGE-MANAGER' | 'SECURITY' | 'PERSISTENT-ID' | 'OTHER';
  referenceType: string;
  referenceLocator: string;
}

export interface SpdxPackage {
  name: string;
  SPDXID: string;
  versionInfo: string;
  supplier: string;
  originator?: string;
  downloadLocation: string;
  filesAnalyzed: false;
  licenseConcluded: string;
  licenseDeclared: string;
  copyrightText: string;
  primaryPackagePurpose?: string;
  comment?: string;
  externalRefs: SpdxExternalRef[];
}

export interface SpdxRelationship {
  spdxElementId: string;
  relationshipType: 'DESCRIBES' | 'CONTAINS';
  relatedSpdxElement: string;
}

export interface SpdxDocument {
  spdxVersion: typeof SPDX_VERSION;
  dataLicense: 'CC0-1.0';
  SPDXID: 'SPDXRef-DOCUMENT';
  name: string;
  documentNamespace: string;
  creationInfo: { creators: string[]; created: string; comment?: string };
  packages: SpdxPackage[];
  relationships: SpdxRelationship[];
}

export interface SbomInput {
  /** The template's metadata from its image config ('org.openvz.template'). */
  template: TemplateMetadata;
  /** The digest of the image manifest the document describes. */
  manifestDigest: Digest;
  /** The image config's `created`; the document's creation time, so it is reproducible. */
  created: string | undefined;
  /** vztpl's version, for the creator "Tool: vztpl-<version>". */
  toolVersion: string;
}

/** The SPDXID of the template itself (the package the document DESCRIBES). */
export const TEMPLATE_SPDXID = 'SPDXRef-Template';

/** os-release IDs (what purl namespaces and distro qualifiers use) for vztpl's distro names. */
const OS_RELEASE_ID: Record<string, string> = { rockylinux: 'rocky', rocky: 'rocky', almalinux: 'almalinux', centos: 'centos', fedora: 'fedora', rhel: 'rhel', debian: 'debian', ubuntu: 'ubuntu' };

/** The purl namespace (vendor) of a distribution: its os-release ID. */
export function purlNamespace(distro: string): string {
  const id = distro.toLowerCase();
  return OS_RELEASE_ID[id] ?? id.replace(/[^a-z0-9._-]/g, '-');
}

/**
 * Percent-encodes a purl component: everything but ASCII letters, digits and ".-_~" (so a
 * Debian "1:2.3+dfsg" is "1%3A2.3%2Bdfsg", as packageurl's reference implementations write it).
 */
export function purlEncode(value: string): string {
  return Array.from(Buffer.from(value, 'utf8'))
    .map((b) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z0-9._~-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
}

/**
 * A package's purl. Debian family: pkg:deb/<vendor>/NAME@VERSION?arch=ARCH&distro=<vendor>-<release>
 * (the Debian version whole, epoch included). RPM family: pkg:rpm/<vendor>/NAME@VERSION-RELEASE
 * ?arch=ARCH&distro=<vendor>-<release>[&epoch=E] (the purl rpm type keeps the epoch a qualifier).
 * Qualifiers in key order, as the canonical form has them.
 */
export function packagePurl(family: TemplateMetadata['family'], distro: string, release: string, pkg: LockedPackage): string {
  const vendor = purlNamespace(distro);
  const qualifiers: Record<string, string> = { arch: pkg.arch, distro: `${vendor}-${release}` };
  let version = pkg.version;
  if (family === 'rpm') {
    const m = /^(\d+):(.+)$/.exec(version);
    if (m) {
      qualifiers.epoch = m[1]!;
      version = m[2]!;
    }
  }
  const query = Object.keys(qualifiers)
    .filter((k) => qualifiers[k] !== '')
    .sort()
    .map((k) => `${k}=${purlEncode(qualifiers[k]!)}`)
    .join('&');
  return `pkg:${family}/${purlEncode(vendor)}/${purlEncode(pkg.name)}${version ? `@${purlEncode(version)}` : ''}${query ? `?${query}` : ''}`;
}

/** An SPDXID for a package: readable, unique (a hash of name, version and arch), of SPDX's idstring characters. */
export function packageSpdxId(pkg: LockedPackage): string {
  const readable = pkg.name.replace(/[^A-Za-z0-9.-]/g, '-');
  return `SPDXRef-Package-${readable}-${digestHex(sha256(`${pkg.name}\t${pkg.version}\t${pkg.arch}`)).slice(0, 16)}`;
}

/** SPDX's date form: YYYY-MM-DDThh:mm:ssZ, UTC, no fraction. The epoch when the image has no date. */
export function spdxDate(created: string | undefined): string {
  const t = created ? Date.parse(created) : NaN;
  return new Date(Number.isFinite(t) ? t : 0).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The document namespace: unique per manifest, the same for the same manifest. */
export function documentNamespace(template: TemplateMetadata, manifestDigest: Digest): string {
  return `${NAMESPACE_BASE}/${purlEncode(template.name)}-${purlEncode(template.version)}-${digestHex(manifestDigest)}`;
}

/** What a package lock does not say of a package (nor of the template): SPDX's NOASSERTION, no file analysis. */
const UNASSERTED = {
  supplier: NOASSERTION,
  downloadLocation: NOASSERTION,
  filesAnalyzed: false,
  licenseConcluded: NOASSERTION,
  licenseDeclared: NOASSERTION,
  copyrightText: NOASSERTION,
} as const;

/** The SPDX 2.3 document of a template's package lock. */
export function buildSpdxDocument(input: SbomInput): SpdxDocument {
  const { template, manifestDigest } = input;
  const ociArch = ociArchitecture(template.arch);
  const templatePackage: SpdxPackage = {
    name: template.name,
    SPDXID: TEMPLATE_SPDXID,
    versionInfo: template.version,
    ...UNASSERTED,
    primaryPackagePurpose: 'CONTAINER',
    comment: `OS template ${template.distro} ${template.release} ${template.arch}${template.flavor ? ` (${template.flavor})` : ''}, image manifest ${manifestDigest}, built by vztpl from recipe ${template.recipeDigest}`,
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:oci/${purlEncode(template.name)}@${purlEncode(manifestDigest)}?arch=${purlEncode(ociArch)}` }],
  };
  const packages = template.packages.map(
    (p): SpdxPackage => ({
      name: p.name,
      SPDXID: packageSpdxId(p),
      versionInfo: p.version,
      ...UNASSERTED,
      primaryPackagePurpose: 'INSTALL',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: packagePurl(template.family, template.distro, template.release, p) }],
    }),
  );
  return {
    spdxVersion: SPDX_VERSION,
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${template.name}-${template.version}`,
    documentNamespace: documentNamespace(template, manifestDigest),
    creationInfo: {
      creators: [`Tool: vztpl-${input.toolVersion}`],
      created: spdxDate(input.created),
      comment: `The ${template.family === 'deb' ? 'dpkg' : 'rpm'} package lock of the template, as recorded in its image config when it was built.`,
    },
    packages: [templatePackage, ...packages],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: TEMPLATE_SPDXID },
      ...packages.map((p): SpdxRelationship => ({ spdxElementId: TEMPLATE_SPDXID, relationshipType: 'CONTAINS', relatedSpdxElement: p.SPDXID })),
    ],
  };
}

/** The document's bytes: indented (it is printed for people too), fixed key order, a final newline. */
export function spdxBytes(doc: SpdxDocument): Buffer {
  return Buffer.from(`${JSON.stringify(doc, null, 2)}\n`, 'utf8');
}

export interface SbomArtifact {
  /** The SPDX document's bytes (the artifact's one layer). */
  document: Buffer;
  layer: Descriptor;
  /** The artifact manifest's bytes; its digest is the referrer's. */
  manifest: Buffer;
  digest: Digest;
}

/** Annotation of the artifact manifest: when the document was created (image-spec's created, the image's). */
const CREATED_ANNOTATION = 'org.opencontainers.image.created';
const TITLE_ANNOTATION = 'org.opencontainers.image.title';

/**
 * The OCI 1.1 artifact carrying an SPDX document as a referrer of `subject`: an image manifest
 * with artifactType application/spdx+json, the empty config, the document as its one layer.
 */
export function buildSbomArtifact(subject: Descriptor, document: Buffer, created: string): SbomArtifact {
  const layer: Descriptor = { mediaType: SPDX_MEDIA_TYPE, digest: sha256(document), size: document.length, annotations: { [TITLE_ANNOTATION]: 'sbom.spdx.json' } };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.manifest,
      artifactType: SPDX_MEDIA_TYPE,
      config: { ...EMPTY_CONFIG },
      layers: [layer],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      annotations: { [CREATED_ANNOTATION]: created },
    }),
  );
  return { document, layer, manifest, digest: sha256(manifest) };
}

/** The SBOM artifact of an image: document and manifest, from the image's manifest descriptor, config template metadata and creation time. */
export function sbomArtifactFor(subject: Descriptor, input: Omit<SbomInput, 'manifestDigest'>): SbomArtifact {
  const doc = buildSpdxDocument({ ...input, manifestDigest: subject.digest });
  return buildSbomArtifact(subject, spdxBytes(doc), doc.creationInfo.created);
}
