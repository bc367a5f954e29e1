// Signatures in the sigstore (cosign) format, proven with containers/image (skopeo 1.9, Debian
// 12): skopeo signs with a key "vztpl key generate" made and "vztpl verify" accepts it; skopeo's
// own sigstoreSigned policy (registries.d use-sigstore-attachments) copies what "vztpl push
// --sign-key" signed and refuses what is unsigned, signed by another key, or signed for another
// digest or repository. Bad input (a corrupt key, a wrong password, a signature manifest that is
// not JSON or too large, a tampered payload) gets a clear error, and nothing is published.
// A `vztpl serve` process on 127.0.0.1 with fs storage; a small layout made with GNU tar.
//
// Debian 12's skopeo 1.9 and podman 4.3 are built with sigstore disabled (Debian's
// disable-sigstore.patch in golang-github-containers-image 5.23.1: "Debian-local change: sigstore
// disabled"). The tests that need containers/image's sigstore code run with the skopeo named by
// VZTPL_TEST_SKOPEO (e.g. Debian 13's skopeo 1.18: scripts/skopeo-sigstore.sh fetches
// it) and are skipped, saying why, when the skopeo at hand cannot sign; vztpl's side always runs.
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { buildPayload, buildSignatureManifest, signatureLayer, signatureTag } from '../../format/sigstore/index.ts';
import { decodeCosignPrivateKey, signMessage } from '../../format/sigstore/private-key.ts';
import {
  blob,
  cliEnv,
  digestOf,
  freePort,
  makeSmallLayout,
  pushBlob,
  putManifest,
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

/** A skopeo with sigstore: $VZTPL_TEST_SKOPEO, else the one scripts/setup.sh fetches, else the host's. */
const SIGSTORE_SKOPEO = '/opt/vztpl-test/skopeo-sigstore/skopeo';
const SKOPEO = process.env.VZTPL_TEST_SKOPEO || (existsSync(SIGSTORE_SKOPEO) ? SIGSTORE_SKOPEO : 'skopeo');
const haveSkopeo = SKOPEO !== 'skopeo' || Boolean(findProgram('skopeo'));
const PASSWORD = 'correct horse battery staple';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe.skipIf(!haveSkopeo)('sigstore signatures with skopeo and vztpl', () => {
  let work: string;
  let server: Spawned;
  let host: string; // 127.0.0.1:PORT
  let base: string;
  let layout: SmallLayout;
  let registriesD: string;
  const policies: Record<string, string> = {};
  const keys = { a: '', b: '' }; // prefixes
  /** Why the skopeo at hand cannot do sigstore, or undefined when it can. */
  let noSigstore: string | undefined;
  const needSigstore = (ctx: { skip: (note?: string) => void }) => {
    if (noSigstore) {
      console.warn(`skipped: ${noSigstore}`);
      ctx.skip(noSigstore);
    }
  };

  const vztpl = (args: string[], env: Record<string, string> = { VZTPL_KEY_PASSWORD: PASSWORD }) => runCli(args, { env: cliEnv(env), timeoutMs: 120_000 });
  const skopeo = (policy: string, args: string[]) => run(SKOPEO, ['--policy', policies[policy]!, '--registries.d', registriesD, ...args], { timeoutMs: 180_000 });
  const ok = (r: RunResult, what: string) => expect(r.code, `${what}:\n${r.stderr}\n${r.stdout}`).toBe(0);
  /** skopeo copies REF out under a policy (the policy is checked on the source). */
  const pullWith = async (policy: string, ref: string) => {
    const out = await mkdtemp(join(work, 'out-'));
    return skopeo(policy, ['copy', '--quiet', '--src-tls-verify=false', '--remove-signatures', `docker://${ref}`, `dir:${out}`]);
  };
  const manifestDigest = async (repo: string, ref: string): Promise<Digest> => {
    const r = await req(base, 'GET', `/v2/${repo}/manifests/${ref}`, { headers: { accept: OCI_MANIFEST } });
    expect(r.status, `${repo}:${ref}`).toBe(200);
    return digestOf(r.body);
  };
  const tagsOf = async (repo: string): Promise<string[]> => {
    const r = await req(base, 'GET', `/v2/${repo}/tags/list`);
    return r.status === 200 ? ((r.json().tags as string[] | null) ?? []).sort() : [];
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'vztpl-trust-'));
    const port = await freePort();
    host = `127.0.0.1:${port}`;
    base = `http://${host}`;
    server = spawnCli(['serve', '--listen', host, '--storage', `fs:${join(work, 'registry')}`], cliEnv({ VZTPL_LOG_LEVEL: 'warn' }));
    await waitHealthy(`${base}/healthz`, server);
    layout = await makeSmallLayout(join(work, 'layout'), '1.0.0', { name: 'tiny', version: '1.0.0', distro: 'debian', release: '12', arch: 'x86_64' });
    for (const k of ['a', 'b'] as const) {
      keys[k] = join(work, `key-${k}`);
      const r = await vztpl(['key', 'generate', keys[k]]);
      ok(r, `key generate ${k}`);
    }
    await writeFile(join(work, 'passphrase'), `${PASSWORD}\n`);
    registriesD = join(work, 'registries.d');
    await mkdir(registriesD);
    await writeFile(join(registriesD, 'vztpl-test.yaml'), `docker:\n  ${host}:\n    use-sigstore-attachments: true\n`);
    const write = async (name: string, policy: unknown) => {
      policies[name] = join(work, `${name}.json`);
      await writeFile(policies[name], JSON.stringify(policy, null, 2));
    };
    await write('insecure', { default: [{ type: 'insecureAcceptAnything' }] });
    // keyPath: the vztpl public key; cosign payloads name the repository without a tag
    await write('keyA', {
      default: [{ type: 'reject' }],
      transports: { docker: { [host]: [{ type: 'sigstoreSigned', keyPath: `${keys.a}.pub`, signedIdentity: { type: 'matchRepository' } }] } },
    });
    // the default signedIdentity (matchRepoDigestOrExact): enough for a reference by digest
    await write('keyAdefault', { default: [{ type: 'reject' }], transports: { docker: { [host]: [{ type: 'sigstoreSigned', keyPath: `${keys.a}.pub` }] } } });
    // can this skopeo sign with sigstore? (Debian 12's cannot)
    const probe = await skopeo('insecure', ['copy', '--quiet', '--dest-tls-verify=false', '--sign-by-sigstore-private-key', `${keys.a}.key`, '--sign-passphrase-file', join(work, 'passphrase'), `oci:${layout.dir}:1.0.0`, `docker://${host}/probe/x:1.0.0`]);
    if (probe.code !== 0) {
      const version = (await run(SKOPEO, ['--version'])).stdout.trim();
      noSigstore = /sigstore disabled/.test(probe.stderr)
        ? `${version} (${SKOPEO}) is built without sigstore ("${probe.stderr.trim().replace(/^.*msg="|"$/g, '')}"): set VZTPL_TEST_SKOPEO to a skopeo with sigstore (scripts/skopeo-sigstore.sh)`
        : `${version} (${SKOPEO}) could not sign: ${probe.stderr.trim()}`;
    }
  });

  afterAll(async () => {
    await server?.kill();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('vztpl key generate: a 0600 cosign private key and a PEM public key; never over existing files', async () => {
    expect((await stat(`${keys.a}.key`)).mode & 0o777).toBe(0o600);
    expect(await readFile(`${keys.a}.key`, 'utf8')).toMatch(/^-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n/);
    expect(await readFile(`${keys.a}.pub`, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    const before = await readFile(`${keys.a}.key`);
    const again = await vztpl(['key', 'generate', keys.a]);
    expect(again.code).toBe(6);
    expect(again.stderr).toMatch(/key-a\.key exists; refusing to overwrite it/);
    expect(await readFile(`${keys.a}.key`)).toEqual(before);
    // no password: no variable and no terminal
    const none = await runCli(['key', 'generate', join(work, 'nopw')], { env: cliEnv() });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no password for the new key: set VZTPL_KEY_PASSWORD/);
    await expect(stat(join(work, 'nopw.key'))).rejects.toThrow();
  });

  it('vztpl push --sign-key writes the signature manifest cosign writes; vztpl verify accepts it, and says why not for an unsigned image and another key', async () => {
    const push = async (repo: string, key?: string) => {
      const r = await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/${repo}:1.0.0`, ...(key ? ['--sign-key', key] : [])]);
      ok(r, `push ${repo}`);
      return r;
    };
    const signedPush = await push('trust/signed', `${keys.a}.key`);
    expect(signedPush.stderr).toMatch(/signed 127\.0\.0\.1:\d+\/trust\/signed@sha256:[0-9a-f]{64} with key SHA256:[0-9a-f]{64} \(ecdsa-P-256\); 1 signature in/);
    await push('trust/unsigned');
    await push('trust/other-key', `${keys.b}.key`);
    const digest = await manifestDigest('trust/signed', '1.0.0');
    expect(digest).toBe(layout.manifest.digest);
    expect(await tagsOf('trust/signed')).toEqual(expect.arrayContaining(['1.0.0', signatureTag(digest)]));

    // the signature manifest as cosign writes it
    const sig = await req(base, 'GET', `/v2/trust/signed/manifests/${signatureTag(digest)}`, { headers: { accept: OCI_MANIFEST } });
    expect(sig.headers.get('content-type')).toBe(OCI_MANIFEST);
    const m = sig.json();
    expect(m.mediaType).toBe(OCI_MANIFEST);
    expect(m.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(m.layers).toHaveLength(1);
    expect(m.layers[0].mediaType).toBe('application/vnd.dev.cosign.simplesigning.v1+json');
    expect(m.layers[0].annotations['dev.cosignproject.cosign/signature']).toMatch(/^[A-Za-z0-9+/]+=*$/);
    const payload = await req(base, 'GET', `/v2/trust/signed/blobs/${m.layers[0].digest}`);
    expect(payload.text).toBe(
      `{"critical":{"identity":{"docker-reference":"${host}/trust/signed"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`,
    );
    const config = await req(base, 'GET', `/v2/trust/signed/blobs/${m.config.digest}`);
    expect(config.json()).toEqual({ architecture: '', created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '', rootfs: { type: 'layers', diff_ids: [m.layers[0].digest] }, config: {} });

    const verified = await vztpl(['verify', `${host}/trust/signed:1.0.0`, '--key', `${keys.a}.pub`]);
    ok(verified, 'verify signed');
    expect(verified.stdout).toMatch(new RegExp(`Verified OK: ${host}/trust/signed:1\\.0\\.0 \\(${digest}\\)\n  signed by key SHA256:[0-9a-f]{64} \\(ecdsa-P-256\\)\n  signature 1 of 1`));
    const vUnsigned = await vztpl(['verify', `${host}/trust/unsigned:1.0.0`, '--key', `${keys.a}.pub`]);
    expect(vUnsigned.code).toBe(1);
    expect(vUnsigned.stderr).toMatch(new RegExp(`not verified: ${host}/trust/unsigned:1\\.0\\.0 \\(${digest}\\) is unsigned \\(no signature manifest .*${signatureTag(digest)}\\)`));
    const vOther = await vztpl(['verify', `${host}/trust/other-key:1.0.0`, '--key', `${keys.a}.pub`, '--json']);
    expect(vOther.code).toBe(1);
    expect(JSON.parse(vOther.stdout)).toMatchObject({ verified: false, reason: 'other-key', signatures: 1 });
    expect(vOther.stderr).toMatch(/no signature by key SHA256:/);

    // a second signature (key b) is appended; the first stays; both verify, by tag and by digest
    const second = await vztpl(['sign', `${host}/trust/other-key@${digest}`, '--key', `${keys.a}.key`]);
    ok(second, 'vztpl sign a second key');
    expect(second.stderr).toMatch(/2 signatures in .*\.sig/);
    for (const [key, layer] of [['a', 1], ['b', 0]] as const) {
      const r = await vztpl(['verify', `${host}/trust/other-key@${digest}`, '--key', `${keys[key]}.pub`, '--json']);
      ok(r, `verify ${key}`);
      expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, digest, layer, signatures: 2 });
    }
    // one payload (same repository and digest), two signatures of it
    const m2 = (await req(base, 'GET', `/v2/trust/other-key/manifests/${signatureTag(digest)}`, { headers: { accept: OCI_MANIFEST } })).json();
    expect(new Set(m2.layers.map((l: { digest: string }) => l.digest)).size).toBe(1);
    expect(m2.layers[0].annotations).not.toEqual(m2.layers[1].annotations);
  });

  it('a signature for another digest or another repository, crafted by hand, is refused by vztpl verify', async () => {
    const key = await decodeCosignPrivateKey(await readFile(`${keys.a}.key`), PASSWORD, 'a.key');
    const digest = layout.manifest.digest;
    /** Pushes the layout as REPO:1.0.0 with a signature manifest holding a payload for (reference, signed digest). */
    const craft = async (repo: string, dockerReference: string, signedDigest: Digest) => {
      ok(await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/${repo}:1.0.0`]), `push ${repo}`);
      const payload = buildPayload(dockerReference, signedDigest);
      const layer = signatureLayer(payload, signMessage(key.key, payload).toString('base64'));
      const built = buildSignatureManifest([layer]);
      await pushBlob(base, repo, blob(payload, layer.mediaType));
      await pushBlob(base, repo, blob(built.config));
      const put = await putManifest(base, repo, signatureTag(digest), blob(built.manifest, OCI_MANIFEST));
      expect(put.status).toBe(201);
    };
    await craft('trust/wrong-digest', `${host}/trust/wrong-digest`, digestOf('another manifest'));
    await craft('trust/wrong-repo', `${host}/trust/elsewhere`, digest);

    const vDigest = await vztpl(['verify', `${host}/trust/wrong-digest:1.0.0`, '--key', `${keys.a}.pub`]);
    expect(vDigest.code).toBe(1);
    expect(vDigest.stderr).toMatch(new RegExp(`a signature for another digest: ${digestOf('another manifest')}, not ${digest}`));
    const vRepo = await vztpl(['verify', `${host}/trust/wrong-repo:1.0.0`, '--key', `${keys.a}.pub`]);
    expect(vRepo.code).toBe(1);
    expect(vRepo.stderr).toMatch(new RegExp(`a signature for another repository: ${host}/trust/elsewhere, not ${host}/trust/wrong-repo`));
  });

  it('[containers/image] its sigstoreSigned policy copies what vztpl signed; refuses unsigned, another key, another digest, another repository', async (ctx) => {
    needSigstore(ctx);
    const digest = layout.manifest.digest;
    // accepted by tag and by digest with signedIdentity matchRepository
    ok(await pullWith('keyA', `${host}/trust/signed:1.0.0`), 'skopeo copy of the vztpl-signed image');
    ok(await pullWith('keyA', `${host}/trust/signed@${digest}`), 'skopeo copy by digest');
    // the default identity (matchRepoDigestOrExact) wants a tag or digest in the payload's
    // reference, which cosign's payloads (and so vztpl's) never have: policies need matchRepository
    const byDefault = await pullWith('keyAdefault', `${host}/trust/signed@${digest}`);
    expect(byDefault.code).not.toBe(0);
    expect(byDefault.stderr).toMatch(/Signature for identity .*trust\/signed.* is not accepted/);
    // the manifest vztpl sign appended to (signatures by b, then a)
    ok(await pullWith('keyA', `${host}/trust/other-key:1.0.0`), 'skopeo copy of the twice-signed image');
    const refusals: Array<[string, RegExp]> = [
      ['trust/unsigned', /A signature was required, but no signature exists/],
      ['trust/wrong-digest', /Signature for digest .* does not match/],
      ['trust/wrong-repo', /Signature for identity .*trust\/elsewhere.* is not accepted/],
    ];
    for (const [repo, message] of refusals) {
      const r = await pullWith('keyA', `${host}/${repo}:1.0.0`);
      expect({ repo, code: r.code }).not.toEqual({ repo, code: 0 });
      expect(r.stderr, repo).toMatch(message);
    }
    // signed by key b only
    ok(await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/trust/b-only:1.0.0`, '--sign-key', `${keys.b}.key`]), 'push b-only');
    const other = await pullWith('keyA', `${host}/trust/b-only:1.0.0`);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/cryptographic signature verification failed/);
  });

  it('[containers/image] skopeo signs with a key vztpl key generate made; vztpl verify accepts that signature, and vztpl sign appends to it', async (ctx) => {
    needSigstore(ctx);
    const repo = 'trust/skopeo-signed';
    const signedBySkopeo = await skopeo('insecure', [
      'copy', '--quiet', '--dest-tls-verify=false',
      '--sign-by-sigstore-private-key', `${keys.a}.key`, '--sign-passphrase-file', join(work, 'passphrase'),
      `oci:${layout.dir}:1.0.0`, `docker://${host}/${repo}:1.0.0`,
    ]);
    ok(signedBySkopeo, 'skopeo copy --sign-by-sigstore-private-key');
    const digest = await manifestDigest(repo, '1.0.0');
    expect(await tagsOf(repo)).toEqual(expect.arrayContaining(['1.0.0', signatureTag(digest)]));

    const verified = await vztpl(['verify', `${host}/${repo}:1.0.0`, '--key', `${keys.a}.pub`]);
    ok(verified, 'vztpl verify of the skopeo signature');
    expect(verified.stdout).toMatch(new RegExp(`Verified OK: ${host}/${repo}:1\\.0\\.0 \\(${digest}\\)`));
    // skopeo names the tag in the identity (and adds creator and timestamp)
    expect(verified.stdout).toMatch(new RegExp(`signature 1 of 1 .* identity ${host}/${repo}:1\\.0\\.0`));
    const byB = await vztpl(['verify', `${host}/${repo}:1.0.0`, '--key', `${keys.b}.pub`]);
    expect(byB.code).toBe(1);
    expect(byB.stderr).toMatch(/not verified: .*: no signature by key SHA256:[0-9a-f]{64}/);

    // vztpl sign with key b appends to skopeo's manifest; both verify
    const sign = await vztpl(['sign', `${host}/${repo}@${digest}`, '--key', `${keys.b}.key`]);
    ok(sign, 'vztpl sign');
    expect(sign.stderr).toMatch(/2 signatures in .*\.sig/);
    for (const key of ['a', 'b'] as const) {
      const r = await vztpl(['verify', `${host}/${repo}@${digest}`, '--key', `${keys[key]}.pub`, '--json']);
      ok(r, `verify ${key}`);
      expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, digest, layer: key === 'a' ? 0 : 1, signatures: 2 });
    }
    // containers/image reads the manifest vztpl rewrote: skopeo's signature still passes its policy
    ok(await pullWith('keyA', `${host}/${repo}:1.0.0`), 'skopeo copy under the key-a policy after vztpl sign');
  });

  it('bad keys: a corrupt key file, a wrong password, a private key given as the public one: exit 2 naming the file; nothing is published', async () => {
    const corrupt = join(work, 'corrupt.key');
    await writeFile(corrupt, 'this is not a key\n');
    const truncated = join(work, 'truncated.key');
    const full = await readFile(`${keys.a}.key`, 'utf8');
    await writeFile(truncated, full.replace(/\n[^\n]+\n-----END/, '\n-----END'));
    const sigBefore = await tagsOf('trust/signed');
    const target = `${host}/trust/signed:1.0.0`;

    const cases: Array<{ what: string; args: string[]; env?: Record<string, string>; message: RegExp }> = [
      { what: 'sign, corrupt key', args: ['sign', target, '--key', corrupt], message: /corrupt\.key: not a PEM file/ },
      { what: 'sign, truncated key', args: ['sign', target, '--key', truncated], message: /truncated\.key: the encrypted key is not JSON/ },
      { what: 'sign, wrong password', args: ['sign', target, '--key', `${keys.b}.key`], env: { VZTPL_KEY_PASSWORD: 'wrong' }, message: /key-b\.key: wrong password for this private key/ },
      { what: 'sign, no password, no terminal', args: ['sign', target, '--key', `${keys.b}.key`], env: {}, message: /key-b\.key: no password for the private key: set VZTPL_KEY_PASSWORD/ },
      { what: 'sign, missing key file', args: ['sign', target, '--key', join(work, 'absent.key')], message: /absent\.key: cannot read the private key: .*ENOENT/ },
      { what: 'sign, a public key', args: ['sign', target, '--key', `${keys.b}.pub`], message: /key-b\.pub: PEM type "PUBLIC KEY" is not a cosign private key/ },
      { what: 'push, corrupt key', args: ['push', `${layout.dir}:1.0.0`, `${host}/trust/never:1.0.0`, '--sign-key', corrupt], message: /corrupt\.key: not a PEM file/ },
      { what: 'push, wrong password', args: ['push', `${layout.dir}:1.0.0`, `${host}/trust/never:1.0.0`, '--sign-key', `${keys.a}.key`], env: { VZTPL_KEY_PASSWORD: 'nope' }, message: /key-a\.key: wrong password/ },
      { what: 'verify, private key as --key', args: ['verify', target, '--key', `${keys.a}.key`], message: /key-a\.key: PEM type "ENCRYPTED COSIGN PRIVATE KEY" is not a public key/ },
      { what: 'verify, corrupt public key', args: ['verify', target, '--key', corrupt], message: /corrupt\.key: not a PEM public key/ },
    ];
    for (const c of cases) {
      const r = await vztpl(c.args, c.env ?? { VZTPL_KEY_PASSWORD: PASSWORD });
      expect({ what: c.what, code: r.code }).toEqual({ what: c.what, code: 2 });
      expect(r.stderr, c.what).toMatch(c.message);
      expect(r.stderr, c.what).not.toMatch(/internal error|at .*\.ts:\d+/);
    }
    expect(await tagsOf('trust/never')).toEqual([]);
    expect(await tagsOf('trust/signed')).toEqual(sigBefore);
    const sig = await req(base, 'GET', `/v2/trust/signed/manifests/${signatureTag(layout.manifest.digest)}`, { headers: { accept: OCI_MANIFEST } });
    expect(sig.json().layers).toHaveLength(1); // no signature was added

    // unknown reference: 4; unreachable registry: 5
    const unknown = await vztpl(['verify', `${host}/trust/signed:9.9.9`, '--key', `${keys.a}.pub`]);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toMatch(/trust\/signed:9\.9\.9: unknown reference/);
    const closed = await freePort();
    const unreachable = await vztpl(['verify', `127.0.0.1:${closed}/trust/signed:1.0.0`, '--key', `${keys.a}.pub`]);
    expect(unreachable.code).toBe(5);
    expect(unreachable.stderr).toMatch(/cannot reach/);
  });

  describe('a registry that serves a broken signature manifest or payload', () => {
    // A proxy in front of the registry: forwards everything, except the answers a test sets.
    let proxy: Server;
    let proxyHost: string;
    const overrides = new Map<string, { type: string; body: Buffer }>();
    const writes: string[] = [];
    beforeAll(async () => {
      proxy = createServer(async (request, response) => {
        const path = request.url ?? '/';
        if (request.method !== 'GET' && request.method !== 'HEAD') writes.push(`${request.method} ${path}`);
        const o = overrides.get(path);
        if (o && request.method === 'GET') {
          response.writeHead(200, { 'content-type': o.type, 'content-length': String(o.body.length) });
          response.end(o.body);
          return;
        }
        const chunks: Buffer[] = [];
        for await (const c of request) chunks.push(c as Buffer);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(request.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers[k] = v;
        const r = await fetch(`${base}${path}`, { method: request.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined, redirect: 'manual' });
        const body = Buffer.from(await r.arrayBuffer());
        const out: Record<string, string> = {};
        r.headers.forEach((v, k) => {
          if (k !== 'content-encoding' && k !== 'transfer-encoding' && k !== 'connection') out[k] = v;
        });
        out['content-length'] = String(body.length);
        response.writeHead(r.status, out);
        response.end(request.method === 'HEAD' ? undefined : body);
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      proxyHost = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise((r) => proxy?.close(r));
    });

    it('a signature manifest that is not JSON, or is oversized, is refused clearly by verify and by sign (which publishes nothing)', async () => {
      const digest = layout.manifest.digest;
      const sigPath = `/v2/trust/signed/manifests/${signatureTag(digest)}`;
      for (const [what, body, message] of [
        ['not JSON', Buffer.from('<html>this is not a manifest</html>'), /trust\/signed:sha256-[0-9a-f]{64}\.sig: the signature manifest is not JSON/],
        ['oversized', Buffer.alloc(5 * 1024 * 1024, 0x20), /trust\/signed:sha256-[0-9a-f]{64}\.sig: the signature manifest is larger than 4194304 bytes/],
      ] as const) {
        overrides.set(sigPath, { type: OCI_MANIFEST, body });
        writes.length = 0;
        const v = await vztpl(['verify', `${proxyHost}/trust/signed:1.0.0`, '--key', `${keys.a}.pub`]);
        expect({ what, code: v.code }).toEqual({ what, code: 1 });
        expect(v.stderr, what).toMatch(message);
        const s = await vztpl(['sign', `${proxyHost}/trust/signed:1.0.0`, '--key', `${keys.b}.key`]);
        expect({ what, code: s.code }).toEqual({ what, code: 1 });
        expect(s.stderr, what).toMatch(message);
        expect(s.stderr, what).toMatch(/refusing to replace it/);
        expect(writes, what).toEqual([]);
      }
      overrides.clear();
    });

    it('a payload that is not the one the signature manifest names is "tampered"', async () => {
      const digest = layout.manifest.digest;
      const m = (await req(base, 'GET', `/v2/trust/signed/manifests/${signatureTag(digest)}`, { headers: { accept: OCI_MANIFEST } })).json();
      const original = (await req(base, 'GET', `/v2/trust/signed/blobs/${m.layers[0].digest}`)).body;
      const altered = Buffer.from(original.toString().replace(digest, digestOf('evil')));
      overrides.set(`/v2/trust/signed/blobs/${m.layers[0].digest}`, { type: 'application/octet-stream', body: altered });
      const v = await vztpl(['verify', `${proxyHost}/trust/signed:1.0.0`, '--key', `${keys.a}.pub`, '--json']);
      expect(v.code).toBe(1);
      expect(JSON.parse(v.stdout)).toMatchObject({ verified: false, reason: 'tampered' });
      expect(v.stderr).toMatch(/layer 0: tampered payload: the registry served \d+ bytes of digest sha256:[0-9a-f]{64}, the signature manifest names/);
      overrides.clear();
    });
  });
});
