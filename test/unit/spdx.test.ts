// format/spdx.ts: a template's package lock as an SPDX 2.3 document, validated against the
// official SPDX 2.3 JSON schema (test/fixtures/spdx-schema-2.3.json, from spdx/spdx-spec tag
// v2.3: see test/fixtures/README-spdx-schema.md) with ajv, plus the rules of the specification
// the schema does not express (SPDXID form and uniqueness, relationships between elements that
// exist, the date form, filesAnalyzed without files); purls as the purl specification writes
// them; the OCI artifact that carries the document.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { sha256, type Digest } from '../../format/digest.ts';
import { MediaType, type LockedPackage, type TemplateMetadata } from '../../format/oci.ts';
import {
  buildSbomArtifact,
  buildSpdxDocument,
  EMPTY_CONFIG,
  EMPTY_CONFIG_BYTES,
  packagePurl,
  sbomArtifactFor,
  spdxBytes,
  SPDX_MEDIA_TYPE,
  TEMPLATE_SPDXID,
  type SpdxDocument,
} from '../../format/spdx.ts';

const schema = JSON.parse(readFileSync(new URL('../fixtures/spdx-schema-2.3.json', import.meta.url), 'utf8')) as Record<string, unknown>;
// strict: the schema must compile with no unknown keywords or formats ignored
const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);

const DIGEST = sha256('a manifest') as Digest;

const debPackages: LockedPackage[] = [
  { name: 'base-files', version: '12.4+deb12u5', arch: 'amd64' },
  { name: 'libstdc++6', version: '12.2.0-14', arch: 'amd64' },
  { name: 'login', version: '1:4.13+dfsg1-1+b1', arch: 'amd64' },
  { name: 'tzdata', version: '2024a-0+deb12u1', arch: 'all' },
];

function template(over: Partial<TemplateMetadata> = {}): TemplateMetadata {
  return {
    name: 'debian-12-x86_64',
    version: '1.2.0',
    distro: 'debian',
    release: '12',
    arch: 'x86_64',
    recipeDigest: sha256('recipe'),
    family: 'deb',
    packages: debPackages,
    ...over,
  };
}

/** SPDX 2.3 rules the JSON schema leaves out (spec clauses 2, 3, 7, 11). */
function specRules(doc: SpdxDocument): string[] {
  const problems: string[] = [];
  const idstring = /^SPDXRef-[A-Za-z0-9.-]+$/;
  const ids = new Set<string>(['SPDXRef-DOCUMENT']);
  for (const p of doc.packages) {
    if (!idstring.test(p.SPDXID)) problems.push(`bad SPDXID ${p.SPDXID}`);
    if (ids.has(p.SPDXID)) problems.push(`duplicate SPDXID ${p.SPDXID}`);
    ids.add(p.SPDXID);
    // filesAnalyzed true (the default) would require a packageVerificationCode
    if (p.filesAnalyzed !== false) problems.push(`${p.SPDXID}: filesAnalyzed is not false`);
    if (!/^(NOASSERTION|(Person|Organization|Tool): .+)$/.test(p.supplier)) problems.push(`${p.SPDXID}: supplier ${p.supplier}`);
  }
  for (const r of doc.relationships) {
    if (!ids.has(r.spdxElementId) || !ids.has(r.relatedSpdxElement)) problems.push(`relationship to an unknown element: ${JSON.stringify(r)}`);
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(doc.creationInfo.created)) problems.push(`created ${doc.creationInfo.created}`);
  if (!doc.creationInfo.creators.every((c) => /^(Person|Organization|Tool): .+/.test(c))) problems.push('creators');
  if (!/^[a-z][a-z0-9+.-]*:[^#]+$/.test(doc.documentNamespace)) problems.push(`namespace ${doc.documentNamespace} is not a URI without '#'`);
  if (!doc.relationships.some((r) => r.spdxElementId === 'SPDXRef-DOCUMENT' && r.relationshipType === 'DESCRIBES')) problems.push('nothing DESCRIBED');
  return problems;
}

describe('SPDX 2.3 document of a package lock', () => {
  const doc = buildSpdxDocument({ template: template(), manifestDigest: DIGEST, created: '2024-01-01T10:20:30.456Z', toolVersion: '0.1.0' });

  it('validates against the official SPDX 2.3 JSON schema, and keeps the rules the schema cannot say', () => {
    const valid = validate(JSON.parse(spdxBytes(doc).toString('utf8')));
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(valid).toBe(true);
    expect(specRules(doc)).toEqual([]);
  });

  it('the schema catches what is wrong (the validator is not a no-op)', () => {
    const broken = JSON.parse(spdxBytes(doc).toString('utf8')) as Record<string, any>;
    delete broken.packages[1].downloadLocation;
    broken.packages[2].externalRefs[0].referenceCategory = 'PACKAGE_MANAGER'; // SPDX 2.2's spelling
    delete broken.creationInfo;
    expect(validate(broken)).toBe(false);
    const messages = (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        "/packages/1 must have required property 'downloadLocation'",
        '/packages/2/externalRefs/0/referenceCategory must be equal to one of the allowed values',
        " must have required property 'creationInfo'",
      ]),
    );
  });

  it('has the document fields the specification requires', () => {
    expect(doc).toMatchObject({
      spdxVersion: 'SPDX-2.3',
      dataLicense: 'CC0-1.0',
      SPDXID: 'SPDXRef-DOCUMENT',
      name: 'debian-12-x86_64-1.2.0',
      documentNamespace: `https://openvz.org/vztpl/spdx/debian-12-x86_64-1.2.0-${DIGEST.slice(7)}`,
      creationInfo: { creators: ['Tool: vztpl-0.1.0'], created: '2024-01-01T10:20:30Z' },
    });
    expect(doc.relationships[0]).toEqual({ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: TEMPLATE_SPDXID });
    expect(doc.packages[0]).toMatchObject({ SPDXID: TEMPLATE_SPDXID, name: 'debian-12-x86_64', versionInfo: '1.2.0', primaryPackagePurpose: 'CONTAINER' });
    expect(doc.packages[0]!.externalRefs[0]!.referenceLocator).toBe(`pkg:oci/debian-12-x86_64@sha256%3A${DIGEST.slice(7)}?arch=amd64`);
  });

  it('lists every package of the lock with its version, purl, NOASSERTION where the lock says nothing, CONTAINed by the template', () => {
    const listed = doc.packages.slice(1);
    expect(listed.map((p) => [p.name, p.versionInfo])).toEqual(debPackages.map((p) => [p.name, p.version]));
    expect(listed.map((p) => p.externalRefs)).toEqual(
      [
        'pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12',
        'pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12',
        'pkg:deb/debian/login@1%3A4.13%2Bdfsg1-1%2Bb1?arch=amd64&distro=debian-12',
        'pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12',
      ].map((purl) => [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: purl }]),
    );
    for (const p of listed) expect(p).toMatchObject({ supplier: 'NOASSERTION', downloadLocation: 'NOASSERTION', filesAnalyzed: false });
    expect(doc.relationships.slice(1)).toEqual(listed.map((p) => ({ spdxElementId: TEMPLATE_SPDXID, relationshipType: 'CONTAINS', relatedSpdxElement: p.SPDXID })));
  });

  it('RPM templates: pkg:rpm purls with the epoch as a qualifier, the distro as os-release names it', () => {
    // the purl specification's own rpm examples
    expect(packagePurl('rpm', 'fedora', '25', { name: 'curl', version: '7.50.3-1.fc25', arch: 'i386' })).toBe('pkg:rpm/fedora/curl@7.50.3-1.fc25?arch=i386&distro=fedora-25');
    expect(packagePurl('rpm', 'fedora', '25', { name: 'centerim', version: '1:4.22.10-1.el6', arch: 'i686' })).toBe('pkg:rpm/fedora/centerim@4.22.10-1.el6?arch=i686&distro=fedora-25&epoch=1');
    const rpm = template({
      name: 'rockylinux-9-x86_64',
      distro: 'rockylinux',
      release: '9',
      family: 'rpm',
      packages: [
        { name: 'bash', version: '5.1.8-9.el9', arch: 'x86_64' },
        { name: 'openssl-libs', version: '1:3.0.7-27.el9', arch: 'x86_64' },
        { name: 'tzdata', version: '2024a-1.el9', arch: 'noarch' },
        { name: 'libstdc++', version: '11.4.1-3.el9', arch: 'x86_64' },
      ],
    });
    const rdoc = buildSpdxDocument({ template: rpm, manifestDigest: DIGEST, created: '2024-05-01T00:00:00Z', toolVersion: '0.1.0' });
    expect(validate(JSON.parse(spdxBytes(rdoc).toString('utf8'))), JSON.stringify(validate.errors)).toBe(true);
    expect(specRules(rdoc)).toEqual([]);
    expect(rdoc.packages.slice(1).map((p) => [p.name, p.versionInfo, p.externalRefs[0]!.referenceLocator])).toEqual([
      ['bash', '5.1.8-9.el9', 'pkg:rpm/rocky/bash@5.1.8-9.el9?arch=x86_64&distro=rocky-9'],
      ['openssl-libs', '1:3.0.7-27.el9', 'pkg:rpm/rocky/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rocky-9&epoch=1'],
      ['tzdata', '2024a-1.el9', 'pkg:rpm/rocky/tzdata@2024a-1.el9?arch=noarch&distro=rocky-9'],
      ['libstdc++', '11.4.1-3.el9', 'pkg:rpm/rocky/libstdc%2B%2B@11.4.1-3.el9?arch=x86_64&distro=rocky-9'],
    ]);
  });

  it('Ubuntu: the ubuntu vendor and its release', () => {
    expect(packagePurl('deb', 'ubuntu', '24.04', { name: 'libc6', version: '2.39-0ubuntu8', arch: 'amd64' })).toBe('pkg:deb/ubuntu/libc6@2.39-0ubuntu8?arch=amd64&distro=ubuntu-24.04');
  });

  it('SPDXIDs stay unique for one name in two architectures (multiarch) and for names with characters SPDX ids cannot have', () => {
    const packages: LockedPackage[] = [
      { name: 'libc6', version: '2.36-9', arch: 'amd64' },
      { name: 'libc6', version: '2.36-9', arch: 'i386' },
      { name: 'a+b', version: '1', arch: 'all' },
      { name: 'a_b', version: '1', arch: 'all' },
    ];
    const d = buildSpdxDocument({ template: template({ packages }), manifestDigest: DIGEST, created: undefined, toolVersion: '0.1.0' });
    expect(specRules(d)).toEqual([]);
    expect(d.creationInfo.created).toBe('1970-01-01T00:00:00Z'); // no date in the image: a fixed one, never the clock
  });

  it('is reproducible: the same image gives the same bytes; another manifest another namespace', () => {
    const again = buildSpdxDocument({ template: template(), manifestDigest: DIGEST, created: '2024-01-01T10:20:30.456Z', toolVersion: '0.1.0' });
    expect(spdxBytes(again).equals(spdxBytes(doc))).toBe(true);
    const other = buildSpdxDocument({ template: template(), manifestDigest: sha256('another manifest'), created: '2024-01-01T10:20:30.456Z', toolVersion: '0.1.0' });
    expect(other.documentNamespace).not.toBe(doc.documentNamespace);
  });
});

describe('the SBOM artifact (OCI 1.1 referrer)', () => {
  const subject = { mediaType: MediaType.manifest, digest: DIGEST, size: 1234 };

  it('is an image manifest with artifactType application/spdx+json, the empty config, the document as its one layer, the version as subject', () => {
    const art = sbomArtifactFor(subject, { template: template(), created: '2024-01-01T00:00:00Z', toolVersion: '0.1.0' });
    expect(EMPTY_CONFIG.digest).toBe(sha256(EMPTY_CONFIG_BYTES));
    expect(EMPTY_CONFIG.size).toBe(EMPTY_CONFIG_BYTES.length);
    const m = JSON.parse(art.manifest.toString('utf8')) as Record<string, any>;
    expect(m).toEqual({
      schemaVersion: 2,
      mediaType: MediaType.manifest,
      artifactType: SPDX_MEDIA_TYPE,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 },
      layers: [{ mediaType: SPDX_MEDIA_TYPE, digest: sha256(art.document), size: art.document.length, annotations: { 'org.opencontainers.image.title': 'sbom.spdx.json' } }],
      subject,
      annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
    });
    expect(art.digest).toBe(sha256(art.manifest));
    // same image, same artifact: a second push finds it
    expect(sbomArtifactFor(subject, { template: template(), created: '2024-01-01T00:00:00Z', toolVersion: '0.1.0' }).digest).toBe(art.digest);
    expect(buildSbomArtifact(subject, art.document, '2024-01-01T00:00:00Z').manifest.equals(art.manifest)).toBe(true);
  });
});
