// The SBOM beside every version (issue 13): "vztpl push" attaches the template's package list as
// an SPDX 2.3 document, an OCI 1.1 referrer of the version's manifest, to a real "vztpl serve" on
// 127.0.0.1 (fs storage); the referrers API lists it, skopeo (containers/image, a client that is
// not vztpl) reads the referrer manifest by digest, "vztpl sbom" prints it, a second push adds
// nothing, --sign-key signs it, and the catalog API shows signatures and links the SBOM.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { signatureTag } from '../../format/sigstore/index.ts';
import {
  cliEnv,
  digestOf,
  freePort,
  makeSmallLayout,
  parseJsonLines,
  req,
  run,
  runCli,
  spawnCli,
  waitHealthy,
  type Digest,
  type RunResult,
  type SmallLayout,
  type Spawned,
} from '../helpers/registry-env.ts';

const PASSWORD = 'sbom test password';
const SPDX = 'application/spdx+json';
const validate = new Ajv({ allErrors: true, strict: true }).compile(JSON.parse(readFileSync(new URL('../fixtures/spdx-schema-2.3.json', import.meta.url), 'utf8')) as object);
const PACKAGES = [
  { name: 'base-files', version: '12.4+deb12u5', arch: 'amd64' },
  { name: 'bash', version: '5.2.15-2+b7', arch: 'amd64' },
  { name: 'libstdc++6', version: '12.2.0-14', arch: 'amd64' },
  { name: 'login', version: '1:4.13+dfsg1-1+b1', arch: 'amd64' },
  { name: 'tzdata', version: '2024a-0+deb12u1', arch: 'all' },
];
const encode = (s: string) => s.replace(/[^A-Za-z0-9._~-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);

describe('SBOM beside every version', () => {
  let work: string;
  let server: Spawned;
  let host: string;
  let base: string;
  let layout: SmallLayout;
  let key: string;

  const vztpl = (args: string[]) => runCli(args, { env: cliEnv({ VZTPL_KEY_PASSWORD: PASSWORD }), timeoutMs: 120_000 });
  const ok = (r: RunResult, what: string) => expect(r.code, `${what}:\n${r.stderr}\n${r.stdout}`).toBe(0);
  const referrers = async (repo: string, digest: string, artifactType?: string) => {
    const r = await req(base, 'GET', `/v2/${repo}/referrers/${digest}${artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : ''}`);
    expect(r.status).toBe(200);
    return r.json() as { manifests: Array<{ mediaType: string; digest: Digest; size: number; artifactType?: string; annotations?: Record<string, string> }> };
  };
  const tagsOf = async (repo: string): Promise<string[]> => ((await req(base, 'GET', `/v2/${repo}/tags/list`)).json().tags as string[]).sort();

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'vztpl-sbom-'));
    const port = await freePort();
    host = `127.0.0.1:${port}`;
    base = `http://${host}`;
    server = spawnCli(['serve', '--listen', host, '--storage', `fs:${join(work, 'registry')}`], cliEnv({ VZTPL_LOG_LEVEL: 'warn' }));
    await waitHealthy(`${base}/healthz`, server);
    layout = await makeSmallLayout(join(work, 'layout'), '1.0.0', { name: 'debian-12-x86_64', version: '1.0.0', distro: 'debian', release: '12', arch: 'x86_64', packages: PACKAGES });
    key = join(work, 'key');
    ok(await vztpl(['key', 'generate', key]), 'key generate');
  });

  afterAll(async () => {
    await server?.kill();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('push attaches the SPDX document as a referrer; the referrers API and skopeo see it; vztpl sbom prints it; a second push adds no second SBOM', async () => {
    const repo = 'sbom/debian-12-x86_64';
    const push = await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/${repo}:1.0.0`, '--json']);
    ok(push, 'push');
    const events = parseJsonLines(push.stdout);
    const sbomEvent = events.find((e) => e.event === 'sbom')!;
    expect(sbomEvent).toMatchObject({ subject: layout.manifest.digest, existed: false, kept: null, packages: PACKAGES.length, indexed: true });
    expect(events.at(-1)).toMatchObject({ event: 'pushed', digest: layout.manifest.digest, sbom: sbomEvent.digest });
    const sbomDigest = sbomEvent.digest as Digest;

    // the referrers API lists it, with and without the filter
    const all = await referrers(repo, layout.manifest.digest);
    expect(all.manifests).toEqual([expect.objectContaining({ digest: sbomDigest, artifactType: SPDX, mediaType: 'application/vnd.oci.image.manifest.v1+json' })]);
    expect((await referrers(repo, layout.manifest.digest, SPDX)).manifests.map((m) => m.digest)).toEqual([sbomDigest]);
    // pushed by digest: no tag besides the version's
    expect(await tagsOf(repo)).toEqual(['1', '1.0', '1.0.0', 'latest']);

    // the artifact manifest, as the registry serves it and as skopeo reads it
    const raw = await req(base, 'GET', `/v2/${repo}/manifests/${sbomDigest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(digestOf(raw.body)).toBe(sbomDigest);
    const manifest = raw.json() as Record<string, any>;
    expect(manifest).toMatchObject({
      schemaVersion: 2,
      artifactType: SPDX,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf('{}'), size: 2 },
      layers: [{ mediaType: SPDX }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: layout.manifest.digest, size: layout.manifest.size },
    });
    expect(manifest.layers).toHaveLength(1);
    if (findProgram('skopeo')) {
      const sk = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/${repo}@${sbomDigest}`], { timeoutMs: 120_000 });
      expect(sk.code, sk.stderr).toBe(0);
      expect(digestOf(sk.stdout)).toBe(sbomDigest);
      expect(JSON.parse(sk.stdout)).toMatchObject({ artifactType: SPDX, subject: { digest: layout.manifest.digest } });
    } else {
      console.warn('skopeo is not installed: the referrer manifest was read with fetch only');
    }

    // vztpl sbom prints the document: the registry's blob, valid SPDX 2.3, every package with version and purl
    const printed = await vztpl(['sbom', `${host}/${repo}:1.0.0`]);
    ok(printed, 'sbom');
    const blob = await req(base, 'GET', `/v2/${repo}/blobs/${manifest.layers[0].digest}`);
    expect(printed.stdout).toBe(blob.text);
    expect(digestOf(printed.stdout)).toBe(manifest.layers[0].digest);
    const doc = JSON.parse(printed.stdout) as Record<string, any>;
    expect(validate(doc), JSON.stringify(validate.errors, null, 2)).toBe(true);
    expect(doc).toMatchObject({
      spdxVersion: 'SPDX-2.3',
      dataLicense: 'CC0-1.0',
      SPDXID: 'SPDXRef-DOCUMENT',
      documentNamespace: expect.stringContaining(layout.manifest.digest.slice(7)),
      creationInfo: { created: '2024-01-01T00:00:00Z', creators: [expect.stringMatching(/^Tool: vztpl-\d+\.\d+\.\d+/)] },
    });
    const listed = (doc.packages as Array<Record<string, any>>).filter((p) => p.SPDXID !== 'SPDXRef-Template');
    expect(listed.map((p) => [p.name, p.versionInfo, p.externalRefs[0].referenceLocator])).toEqual(
      PACKAGES.map((p) => [p.name, p.version, `pkg:deb/debian/${encode(p.name)}@${encode(p.version)}?arch=${p.arch}&distro=debian-12`]),
    );
    // by digest too
    const byDigest = await vztpl(['sbom', `${host}/${repo}@${layout.manifest.digest}`]);
    ok(byDigest, 'sbom by digest');
    expect(byDigest.stdout).toBe(printed.stdout);

    // a second push (and a push of the same manifest as another version) adds no second SBOM
    const again = await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/${repo}:1.0.0`, '--json']);
    ok(again, 'push again');
    expect(parseJsonLines(again.stdout).find((e) => e.event === 'sbom')).toMatchObject({ digest: sbomDigest, existed: true });
    const text = await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/${repo}:1.0.1`]);
    ok(text, 'push as 1.0.1');
    expect(text.stderr).toContain(`SBOM: ${host}/${repo}@${sbomDigest} (${PACKAGES.length} packages) was there already`);
    expect((await referrers(repo, layout.manifest.digest)).manifests.map((m) => m.digest)).toEqual([sbomDigest]);

    // the catalog links it; the version is unsigned
    const version = (await req(base, 'GET', `/api/v1/templates/${repo}/versions/1.0.0`)).json() as Record<string, any>;
    expect(version).toMatchObject({
      name: repo,
      version: '1.0.0',
      digest: layout.manifest.digest,
      signed: false,
      signatures: null,
      sboms: 1,
      sbom: { digest: sbomDigest, artifactType: SPDX, url: `/v2/${repo}/manifests/${sbomDigest}`, document: { digest: manifest.layers[0].digest, url: `/v2/${repo}/blobs/${manifest.layers[0].digest}` }, signed: false, signatures: null },
    });
    // the links work
    expect(digestOf((await req(base, 'GET', version.sbom.url)).body)).toBe(sbomDigest);
    expect((await req(base, 'GET', version.sbom.document.url)).text).toBe(printed.stdout);
  });

  it('--sign-key signs the SBOM as it signs the template (its own sha256-<hex>.sig); the catalog shows both signatures; signing twice adds nothing', async () => {
    const repo = 'sbom/signed';
    const push = await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/${repo}:1.0.0`, '--sign-key', `${key}.key`, '--json']);
    ok(push, 'signed push');
    const events = parseJsonLines(push.stdout);
    const sbomDigest = events.find((e) => e.event === 'sbom')!.digest as Digest;
    const signed = events.filter((e) => e.event === 'signed');
    expect(signed.map((e) => [e.what, e.digest, e.signatures])).toEqual([
      ['manifest', layout.manifest.digest, 1],
      ['sbom', sbomDigest, 1],
    ]);
    const fingerprint = signed[0]!.key as string;
    expect(await tagsOf(repo)).toEqual(expect.arrayContaining([signatureTag(layout.manifest.digest), signatureTag(sbomDigest)]));

    // vztpl verify accepts the SBOM manifest's signature; vztpl sbom --key checks it
    const verify = await vztpl(['verify', `${host}/${repo}@${sbomDigest}`, '--key', `${key}.pub`]);
    ok(verify, 'verify the SBOM');
    const checked = await vztpl(['sbom', `${host}/${repo}:1.0.0`, '--key', `${key}.pub`]);
    ok(checked, 'sbom --key');
    expect(checked.stderr).toContain(`signed by key ${fingerprint}`);
    expect(validate(JSON.parse(checked.stdout))).toBe(true);

    // the catalog: signed, one signature naming this version and repository; the SBOM signed too
    const version = (await req(base, 'GET', `/api/v1/templates/${repo}/versions/1.0.0`)).json() as Record<string, any>;
    expect(version).toMatchObject({
      signed: true,
      signatures: { tag: signatureTag(layout.manifest.digest), count: 1, matching: 1, signatures: [{ layer: 0, identity: `${host}/${repo}`, signedDigest: layout.manifest.digest, matches: true }] },
      sbom: { digest: sbomDigest, signed: true, signatures: { tag: signatureTag(sbomDigest), count: 1, matching: 1 } },
    });
    expect(version.signatures.signatures[0]).not.toHaveProperty('keys');
    // the versions list with ?trust=true, and the template summary, carry the same fields; the
    // plain list (what hosts read) stays the records alone
    const list = (await req(base, 'GET', `/api/v1/templates/${repo}/versions?trust=true`)).json() as { versions: Array<Record<string, any>> };
    expect(list.versions[0]).toMatchObject({ version: '1.0.0', signed: true, signatures: { count: 1 }, sbom: { digest: sbomDigest } });
    const plain = (await req(base, 'GET', `/api/v1/templates/${repo}/versions`)).json() as { versions: Array<Record<string, any>> };
    expect(plain.versions[0]).toMatchObject({ version: '1.0.0', digest: layout.manifest.digest });
    expect(plain.versions[0]).not.toHaveProperty('signed');
    expect((await req(base, 'GET', `/api/v1/templates/${repo}`)).json()).toMatchObject({ latest: '1.0.0', signed: true, sbom: { digest: sbomDigest } });

    // pushing and signing again: a signature by this key is there, none is added
    const again = await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/${repo}:1.0.0`, '--sign-key', `${key}.key`, '--json']);
    ok(again, 'signed push again');
    expect(parseJsonLines(again.stdout).filter((e) => e.event === 'signed').map((e) => [e.what, e.already])).toEqual([
      ['manifest', true],
      ['sbom', true],
    ]);
    expect((await req(base, 'GET', `/api/v1/templates/${repo}/versions/1.0.0`)).json()).toMatchObject({ signatures: { count: 1 }, sbom: { signatures: { count: 1 } } });

    // another key's signature of the version: counted, and still no key named
    const other = join(work, 'other');
    ok(await vztpl(['key', 'generate', other]), 'key generate other');
    ok(await vztpl(['sign', `${host}/${repo}:1.0.0`, '--key', `${other}.key`]), 'sign with another key');
    expect((await req(base, 'GET', `/api/v1/templates/${repo}/versions/1.0.0`)).json()).toMatchObject({ signed: true, signatures: { count: 2, matching: 2 } });
  });

  it('vztpl sbom: exit 4 naming the reference when the version has no SBOM or does not exist; --no-sbom pushes none; --key refuses an unsigned SBOM', async () => {
    const repo = 'sbom/none';
    const push = await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/${repo}:1.0.0`, '--no-sbom']);
    ok(push, 'push --no-sbom');
    expect((await referrers(repo, layout.manifest.digest)).manifests).toEqual([]);
    const none = await vztpl(['sbom', `${host}/${repo}:1.0.0`]);
    expect(none.code).toBe(4);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain(`${host}/${repo}:1.0.0 (${layout.manifest.digest}) has no SBOM (no referrer of artifactType ${SPDX})`);
    expect((await req(base, 'GET', `/api/v1/templates/${repo}/versions/1.0.0`)).json()).toMatchObject({ signed: false, sbom: null, sboms: 0 });

    const unknown = await vztpl(['sbom', `${host}/${repo}:9.9.9`]);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toContain(`${host}/${repo}:9.9.9: unknown reference`);

    // the first test's SBOM is unsigned: --key says so and prints nothing
    const unsigned = await vztpl(['sbom', `${host}/sbom/debian-12-x86_64:1.0.0`, '--key', `${key}.pub`]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stdout).toBe('');
    expect(unsigned.stderr).toMatch(/not verified: the SBOM .* is unsigned/);
  });
});
