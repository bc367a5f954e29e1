// The host trust policy (issue 13): `vztpl pull` and `vztpl create` against a real `vztpl serve`
// on 127.0.0.1, with small images made here (GNU tar layers), keys made by `vztpl key generate`
// and signatures made by `vztpl push --sign-key` / `vztpl sign`.
//   - signed by a listed key: pulled, created (from the cache and by a create that pulls);
//   - unsigned, signed by another key, a signature copied from another repository, an OCI layout
//     under a policy that asks for keys: refused (exit 1, naming template, digest and reason), and
//     the store is as it was (no ref, no blob, no layer, no container);
//   - a policy tightened after the pull: the signatures kept beside the ref are checked offline
//     (registry gone): kept and by the key, accepted (from the record of the key that verified,
//     or verified again without it); none kept, another key, a kept payload altered: refused;
//     online, a create fetches signatures added since;
//   - insecureAcceptAnything (explicit, or no policy at all): accepted with one warning;
//   - a bad policy (YAML, fields, key files; in host.yaml or --trust-policy): exit 2 naming the
//     file and the entry; --trust-policy before or after the command.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureTag } from '../../format/sigstore/index.ts';
import { parsePublicKey } from '../../format/sigstore/public-key.ts';
import {
  blob,
  cliEnv,
  freePort,
  makeSmallLayout,
  pushBlob,
  putManifest,
  req,
  runCli,
  spawnCli,
  waitHealthy,
  type Digest,
  type RunResult,
  type SmallLayout,
  type Spawned,
} from '../helpers/registry-env.ts';

const PASSWORD = 'trust policy test password';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const SPEC = { name: 'tiny', version: '1.0.0', distro: 'debian', release: '12', arch: 'x86_64' };

/** Files and layer trees under the store's refs/, blobs/, layers/ and containers/ (what a pull or create would add). */
function storeListing(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const layerTree = e.isDirectory() && dir.endsWith('/layers/sha256');
      if (!e.isDirectory() || layerTree || dir.endsWith('/containers')) out.push(relative(root, p) + (e.isDirectory() ? '/' : ''));
      if (e.isDirectory() && !layerTree) walk(p);
    }
  };
  for (const d of ['refs', 'blobs', 'layers', 'containers']) walk(join(root, d));
  return out.sort();
}

interface Registry {
  server: Spawned;
  host: string;
  base: string;
}

async function startRegistry(dir: string): Promise<Registry> {
  const host = `127.0.0.1:${await freePort()}`;
  const server = spawnCli(['serve', '--listen', host, '--storage', `fs:${dir}`], cliEnv({ VZTPL_LOG_LEVEL: 'warn' }));
  await waitHealthy(`http://${host}/healthz`, server);
  return { server, host, base: `http://${host}` };
}

describe('host trust policy: pull and create verify signatures', () => {
  let work: string;
  let reg: Registry;
  let l1: SmallLayout; // acme/signed (key A), acme/copy (the signature of acme/signed copied in)
  let l2: SmallLayout; // acme/unsigned, acme/otherkey (key B), acme/later (signed after the pull), free/any
  const keys = { a: '', b: '' };
  let fingerprintA: string;
  let policyA: string; // 127.0.0.1:PORT/acme/** needs key A; everything else insecureAcceptAnything
  let noConfig: string;

  const env = (extra: Record<string, string> = {}) => cliEnv({ VZTPL_KEY_PASSWORD: PASSWORD, VZTPL_HOST_CONFIG: noConfig, ...extra });
  const vztpl = (args: string[], extra: Record<string, string> = {}) => runCli(args, { env: env(extra), timeoutMs: 120_000 });
  const ok = (r: RunResult, what: string) => {
    expect(r.code, `${what}:\n${r.stderr}\n${r.stdout}`).toBe(0);
    return r;
  };
  const warnings = (r: RunResult) => r.stderr.split('\n').filter((l) => /warning/.test(l));
  /** The ref and kept-signature files of a template in a store. */
  const refFiles = (root: string, host: string, repo: string) => {
    const dir = join(root, 'refs', host.replace(':', '_'), repo);
    return { ref: join(dir, '1.0.0.json'), sig: join(dir, '1.0.0.sig') };
  };
  const refused = (r: RunResult, repo: string, digest: Digest, reason: RegExp) => {
    expect(r.code, `${repo}:\n${r.stderr}`).toBe(1);
    const escaped = `${reg.host}/${repo}:1.0.0`.replace(/[.]/g, '\\.');
    expect(r.stderr).toMatch(new RegExp(`refused ${escaped} \\(${digest}\\): `));
    expect(r.stderr).toMatch(reason);
    expect(r.stderr).not.toMatch(/internal error/);
  };
  const writePolicy = async (name: string, text: string) => {
    const file = join(work, 'policies', name);
    await writeFile(file, text);
    return file;
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'vztpl-trust-policy-'));
    noConfig = join(work, 'no-host.yaml');
    await mkdir(join(work, 'policies'));
    await mkdir(join(work, 'keys'));
    reg = await startRegistry(join(work, 'registry'));
    l1 = await makeSmallLayout(join(work, 'l1'), '1.0.0', SPEC);
    l2 = await makeSmallLayout(join(work, 'l2'), '1.0.0', SPEC);
    for (const k of ['a', 'b'] as const) {
      keys[k] = join(work, 'keys', `key-${k}`);
      ok(await vztpl(['key', 'generate', keys[k]]), `key generate ${k}`);
    }
    fingerprintA = parsePublicKey(await readFile(`${keys.a}.pub`), 'a').fingerprint;
    const push = async (layout: SmallLayout, repo: string, key?: string) => ok(await vztpl(['push', `${layout.dir}:1.0.0`, `${reg.host}/${repo}:1.0.0`, ...(key ? ['--sign-key', key] : [])]), `push ${repo}`);
    await push(l1, 'acme/signed', `${keys.a}.key`);
    await push(l1, 'acme/copy');
    await push(l2, 'acme/unsigned');
    await push(l2, 'acme/otherkey', `${keys.b}.key`);
    await push(l2, 'acme/later');
    await push(l2, 'free/any');
    // The signature manifest of acme/signed, and its blobs, copied under acme/copy's tag.
    const tag = signatureTag(l1.manifest.digest);
    const sig = await req(reg.base, 'GET', `/v2/acme/signed/manifests/${tag}`, { headers: { accept: OCI_MANIFEST } });
    expect(sig.status).toBe(200);
    const m = sig.json() as { config: { digest: string }; layers: Array<{ digest: string }> };
    for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
      const b = await req(reg.base, 'GET', `/v2/acme/signed/blobs/${d}`);
      await pushBlob(reg.base, 'acme/copy', blob(b.body));
    }
    expect((await putManifest(reg.base, 'acme/copy', tag, blob(sig.body, OCI_MANIFEST))).status).toBe(201);
    // Key paths relative to the policy file's directory.
    policyA = await writePolicy('a.yaml', `# acme's templates must be signed by acme\ntrust:\n  - match: "${reg.host}/acme/**"\n    keys: [../keys/key-a.pub]\n  - match: "**"\n    insecureAcceptAnything: true\n`);
  }, 300_000);

  afterAll(async () => {
    await reg?.server.kill();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('signed by the listed key: pull keeps the signature beside the ref; create from the cache and a create that pulls both run', async () => {
    const root = join(work, 'store-signed');
    const r = ok(await vztpl(['pull', `${reg.host}/acme/signed:1.0.0`, '--root', root, '--trust-policy', policyA]), 'pull signed');
    expect(warnings(r)).toEqual([]);
    const files = refFiles(root, reg.host, 'acme/signed');
    const kept = JSON.parse(await readFile(files.sig, 'utf8'));
    expect(kept).toMatchObject({ signedDigest: l1.manifest.digest, repository: `${reg.host}/acme/signed`, verified: { key: fingerprintA, layer: 0 } });
    expect(kept.signatures).toHaveLength(1);
    ok(await vztpl(['create', '201', '--ostemplate', `${reg.host}/acme/signed:1.0.0`, '--layout', 'copy', '--root', root, '--trust-policy', policyA]), 'create from the cache');
    expect(existsSync(join(root, 'containers', '201', 'container.json'))).toBe(true);
    // The checked policy is kept in the store: the next command reads it without YAML.
    expect(readdirSync(join(root, 'trust')).some((f) => /^policy-[0-9a-f]{8}\.json$/.test(f))).toBe(true);

    const fresh = join(work, 'store-signed-create');
    const c = ok(await vztpl(['create', '202', '--ostemplate', `${reg.host}/acme/signed:1.0.0`, '--layout', 'copy', '--root', fresh, '--trust-policy', policyA]), 'create that pulls');
    expect(warnings(c)).toEqual([]);
    expect(existsSync(refFiles(fresh, reg.host, 'acme/signed').sig)).toBe(true);
  });

  it('unsigned, another key, a signature copied from another repository: refused, naming the template, the digest and the reason; the store is as it was', async () => {
    const root = join(work, 'store-refusals');
    ok(await vztpl(['pull', `${reg.host}/acme/signed:1.0.0`, '--root', root, '--trust-policy', policyA]), 'pull signed');
    const before = storeListing(root);
    expect(before.some((p) => p.startsWith('layers/sha256/'))).toBe(true);

    const unsigned = await vztpl(['pull', `${reg.host}/acme/unsigned:1.0.0`, '--root', root, '--trust-policy', policyA]);
    refused(unsigned, 'acme/unsigned', l2.manifest.digest, new RegExp(`: unsigned \\(no signature manifest ${reg.host}/acme/unsigned:${signatureTag(l2.manifest.digest)}\\)`));
    expect(unsigned.stderr).toMatch(new RegExp(`entry 1 \\(match "${reg.host}/acme/\\*\\*"\\) requires a signature by ${fingerprintA}`));
    expect(storeListing(root)).toEqual(before);

    // A create that would pull it: refused the same way, no container.
    const create = await vztpl(['create', '301', '--ostemplate', `${reg.host}/acme/unsigned:1.0.0`, '--layout', 'copy', '--root', root, '--trust-policy', policyA]);
    refused(create, 'acme/unsigned', l2.manifest.digest, /: unsigned/);
    expect(storeListing(root)).toEqual(before);

    const other = await vztpl(['pull', `${reg.host}/acme/otherkey:1.0.0`, '--root', root, '--trust-policy', policyA]);
    refused(other, 'acme/otherkey', l2.manifest.digest, /: no signature by a trusted key \(signed by an unknown key\)/);
    expect(other.stderr).toMatch(/does not verify with key SHA256:/);
    expect(storeListing(root)).toEqual(before);

    // Same digest as acme/signed, whose signature names acme/signed: refused in an empty store.
    const empty = join(work, 'store-copy');
    const copied = await vztpl(['pull', `${reg.host}/acme/copy:1.0.0`, '--root', empty, '--trust-policy', policyA]);
    refused(copied, 'acme/copy', l1.manifest.digest, /: the signature by a trusted key is for another repository/);
    expect(copied.stderr).toMatch(new RegExp(`a signature for another repository: ${reg.host}/acme/signed, not ${reg.host}/acme/copy`));
    expect(storeListing(empty)).toEqual([]);
  });

  it('a policy tightened after caching: offline, a kept signature by the key is accepted, none kept is refused; online, a create fetches a signature added since', async () => {
    const reg2 = await startRegistry(join(work, 'registry2'));
    const root = join(work, 'store-tightened');
    try {
      ok(await vztpl(['push', `${l1.dir}:1.0.0`, `${reg2.host}/acme/signed:1.0.0`, '--sign-key', `${keys.a}.key`]), 'push signed');
      ok(await vztpl(['push', `${l2.dir}:1.0.0`, `${reg2.host}/acme/plain:1.0.0`]), 'push plain');
      // No policy: accepted with one warning each; the signature there is kept anyway.
      for (const repo of ['acme/signed', 'acme/plain']) {
        const r = ok(await vztpl(['pull', `${reg2.host}/${repo}:1.0.0`, '--root', root]), `pull ${repo}`);
        expect(warnings(r)).toHaveLength(1);
        expect(warnings(r)[0]).toMatch(new RegExp(`${repo.replace('/', '\\/')}:1\\.0\\.0 \\(sha256:[0-9a-f]{64}\\) from http://${reg2.host} is not verified: no trust policy`));
      }
      expect(existsSync(refFiles(root, reg2.host, 'acme/signed').sig)).toBe(true);
      expect(existsSync(refFiles(root, reg2.host, 'acme/plain').sig)).toBe(false);
    } finally {
      await reg2.server.kill();
    }
    const tight = await writePolicy('tight.yaml', `trust:\n  - match: "${reg2.host}/**"\n    keys: ["${keys.b}.pub", "${keys.a}.pub"]\n`);
    const onlyB = await writePolicy('only-b.yaml', `trust:\n  - match: "127.0.0.1:*/acme/*"\n    keys: ["${keys.b}.pub"]\n`);
    const create = (ctid: string, repo: string, policy: string) => vztpl(['create', ctid, '--ostemplate', `${reg2.host}/${repo}:1.0.0`, '--layout', 'copy', '--root', root, '--trust-policy', policy]);

    const signed = ok(await create('401', 'acme/signed', tight), 'offline create of the signed template');
    expect(warnings(signed)).toEqual([]);
    const plain = await create('402', 'acme/plain', tight);
    expect(plain.code, plain.stderr).toBe(1);
    expect(plain.stderr).toMatch(new RegExp(`refused ${reg2.host.replace(/\./g, '\\.')}/acme/plain:1\\.0\\.0 \\(${l2.manifest.digest}\\): cached without a signature \\(pulled when no policy asked for one\\), and the registry http://${reg2.host.replace(/\./g, '\\.')} could not be reached to fetch one`));
    expect(existsSync(join(root, 'containers', '402'))).toBe(false);
    // The kept signature is A's: a policy that wants B refuses it, offline.
    const wrongKey = await create('403', 'acme/signed', onlyB);
    expect(wrongKey.code, wrongKey.stderr).toBe(1);
    expect(wrongKey.stderr).toMatch(/no signature by a trusted key/);
    expect(wrongKey.stderr).toMatch(/checked against the signatures kept in the cache; the registry .* could not be asked/);
    // Without the record of which key verified, the kept signature is verified again (offline), and recorded.
    const sigFile = refFiles(root, reg2.host, 'acme/signed').sig;
    const kept = JSON.parse(await readFile(sigFile, 'utf8'));
    expect(kept.verified).toMatchObject({ key: fingerprintA, pem: await readFile(`${keys.a}.pub`, 'latin1') });
    delete kept.verified;
    await writeFile(sigFile, JSON.stringify(kept));
    ok(await create('404', 'acme/signed', tight), 'offline create, verified again');
    expect(JSON.parse(await readFile(sigFile, 'utf8')).verified).toMatchObject({ key: fingerprintA, layer: 0 });
    // A kept payload changed in the store (and the record gone): tampered, refused.
    const payload = Buffer.from(kept.signatures[0].payload, 'base64').toString('utf8').replace('acme/signed', 'acme/signef');
    await writeFile(sigFile, JSON.stringify({ ...kept, signatures: [{ ...kept.signatures[0], payload: Buffer.from(payload).toString('base64') }] }));
    const tampered = await create('405', 'acme/signed', tight);
    expect(tampered.code, tampered.stderr).toBe(1);
    expect(tampered.stderr).toMatch(new RegExp(`refused ${reg2.host.replace(/\./g, '\\.')}/acme/signed:1\\.0\\.0 \\(${l1.manifest.digest}\\): tampered signature payload`));

    // Online: acme/later was pulled unsigned, signed afterwards; a create under the policy fetches the new signature.
    const online = join(work, 'store-online');
    ok(await vztpl(['pull', `${reg.host}/acme/later:1.0.0`, '--root', online]), 'pull later, unsigned');
    expect(existsSync(refFiles(online, reg.host, 'acme/later').sig)).toBe(false);
    const before = await vztpl(['create', '406', '--ostemplate', `${reg.host}/acme/later:1.0.0`, '--layout', 'copy', '--root', online, '--trust-policy', policyA]);
    refused(before, 'acme/later', l2.manifest.digest, /: unsigned/);
    ok(await vztpl(['sign', `${reg.host}/acme/later:1.0.0`, '--key', `${keys.a}.key`]), 'sign later');
    ok(await vztpl(['create', '407', '--ostemplate', `${reg.host}/acme/later:1.0.0`, '--layout', 'copy', '--root', online, '--trust-policy', policyA]), 'create after signing');
    expect(JSON.parse(await readFile(refFiles(online, reg.host, 'acme/later').sig, 'utf8'))).toMatchObject({ verified: { key: fingerprintA } });
  });

  it('insecureAcceptAnything: accepted with one warning naming the entry; an OCI layout is refused by a policy that asks for keys', async () => {
    const root = join(work, 'store-insecure');
    const r = ok(await vztpl(['pull', `${reg.host}/free/any:1.0.0`, '--root', root, '--trust-policy', policyA]), 'pull free/any');
    expect(warnings(r)).toHaveLength(1);
    expect(warnings(r)[0]).toMatch(/free\/any:1\.0\.0 \(sha256:[0-9a-f]{64}\) .* is not verified: trust policy .*a\.yaml, entry 2 \(match "\*\*"\) accepts anything \(insecureAcceptAnything\)/);
    // A create from the cache under insecureAcceptAnything: quiet.
    const c = ok(await vztpl(['create', '501', '--ostemplate', `${reg.host}/free/any:1.0.0`, '--layout', 'copy', '--root', root, '--trust-policy', policyA]), 'create free/any');
    expect(warnings(c)).toEqual([]);

    const ociKeys = await writePolicy('oci.yaml', `trust:\n  - match: "oci:**"\n    keys: ["${keys.a}.pub"]\n`);
    const layoutStore = join(work, 'store-oci');
    const refusedOci = await vztpl(['pull', `oci:${l1.dir}`, '--root', layoutStore, '--trust-policy', ociKeys]);
    expect(refusedOci.code, refusedOci.stderr).toBe(1);
    expect(refusedOci.stderr).toMatch(new RegExp(`refused oci:${l1.dir}:1\\.0\\.0 \\(${l1.manifest.digest}\\): an OCI layout directory \\(oci:DIR\\) holds no signatures`));
    expect(storeListing(layoutStore)).toEqual([]);
    const accepted = ok(await vztpl(['pull', `oci:${l1.dir}`, '--root', layoutStore, '--trust-policy', policyA]), 'oci pull, insecure');
    expect(warnings(accepted)).toHaveLength(1);
    // Cached now; a create under the keys policy is refused too (a layout has nothing to check).
    const ct = await vztpl(['create', '502', '--ostemplate', `oci:${l1.dir}`, '--layout', 'copy', '--root', layoutStore, '--trust-policy', ociKeys]);
    expect(ct.code, ct.stderr).toBe(1);
    expect(ct.stderr).toMatch(/holds no signatures/);
  });

  it('a bad policy is exit 2 naming the file and the entry, in --trust-policy FILE or host.yaml', async () => {
    const root = join(work, 'store-bad');
    const target = `${reg.host}/acme/signed:1.0.0`;
    const cases: Array<[string, string, RegExp]> = [
      ['syntax.yaml', 'trust:\n  - match: "x\n    keys: [\n', /trust policy .*syntax\.yaml:\d+:\d+: not valid YAML/],
      ['both.yaml', `trust:\n  - match: "a/**"\n    insecureAcceptAnything: true\n  - match: "**"\n    keys: [a.pub]\n    insecureAcceptAnything: true\n`, /both\.yaml: trust entry 2 \(match "\*\*"\): give either keys/],
      ['unknown.yaml', 'trust:\n  - match: "**"\n    key: a.pub\n', /unknown\.yaml: trust entry 1 \(match "\*\*"\): unknown field "key"/],
      ['nomatch.yaml', 'trust:\n  - keys: [a.pub]\n', /nomatch\.yaml: trust entry 1, match: /],
      ['notlist.yaml', 'trust: yes\n', /notlist\.yaml: trust: must be a list/],
      ['false.yaml', 'trust:\n  - match: "**"\n    insecureAcceptAnything: false\n', /false\.yaml: trust entry 1 \(match "\*\*"\), insecureAcceptAnything: must be true/],
      ['nokey.yaml', `trust:\n  - match: "**"\n    keys: [${join(work, 'keys', 'nosuch.pub')}]\n`, /nokey\.yaml, entry 1 \(match "\*\*"\): key .*nosuch\.pub: cannot read the public key/],
      ['privkey.yaml', `trust:\n  - match: "**"\n    keys: ["${keys.a}.key"]\n`, /privkey\.yaml, entry 1 \(match "\*\*"\): key .*key-a\.key: PEM type "ENCRYPTED COSIGN PRIVATE KEY" is not a public key/],
    ];
    for (const [name, text, message] of cases) {
      const file = await writePolicy(name, text);
      for (const command of [['pull', target], ['create', '601', '--ostemplate', target, '--layout', 'copy']]) {
        const r = await vztpl([...command, '--root', root, '--trust-policy', file]);
        expect(r.code, `${name} ${command[0]}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(message);
        expect(r.stderr).not.toMatch(/internal error/);
      }
    }
    const missing = await vztpl(['pull', target, '--root', root, '--trust-policy', join(work, 'policies', 'nosuch.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/trust policy .*nosuch\.yaml: cannot read it/);
    // host.yaml's trust section: the same checks, naming host.yaml.
    const hostYaml = join(work, 'host-bad.yaml');
    await writeFile(hostYaml, `root: ${root}\ntrust:\n- match: "**"\n  insecureAcceptAnything: 1\n`);
    const fromHost = await vztpl(['pull', target], { VZTPL_HOST_CONFIG: hostYaml });
    expect(fromHost.code, fromHost.stderr).toBe(2);
    expect(fromHost.stderr).toMatch(/host-bad\.yaml: trust entry 1 \(match "\*\*"\), insecureAcceptAnything: must be true/);
    expect(storeListing(root)).toEqual([]);
  });

  it('--trust-policy before and after the command, and host.yaml trust: (with root: beside it) all apply', async () => {
    const root = join(work, 'store-options');
    const target = `${reg.host}/acme/unsigned:1.0.0`;
    const after = await vztpl(['pull', target, '--root', root, '--trust-policy', policyA]);
    const before = await vztpl(['--trust-policy', policyA, '--root', root, 'pull', target]);
    const equals = await vztpl([`--trust-policy=${policyA}`, 'create', '701', '--ostemplate', target, '--root', root]);
    for (const r of [after, before, equals]) refused(r, 'acme/unsigned', l2.manifest.digest, /: unsigned/);

    const hostYaml = join(work, 'host.yaml');
    await writeFile(hostYaml, `# a host\nroot: ${root}\nregistry: ${reg.host}\ntrust:\n  - match: "${reg.host}/acme/**"\n    keys:\n      - ${keys.a}.pub\n\n  # the rest\n  - match: "**"\n    insecureAcceptAnything: true\n`);
    refused(await vztpl(['pull', 'acme/unsigned:1.0.0'], { VZTPL_HOST_CONFIG: hostYaml }), 'acme/unsigned', l2.manifest.digest, /: unsigned/);
    ok(await vztpl(['pull', 'acme/signed:1.0.0'], { VZTPL_HOST_CONFIG: hostYaml }), 'pull by host.yaml');
    expect(existsSync(refFiles(root, reg.host, 'acme/signed').sig)).toBe(true);
    // --trust-policy takes the place of host.yaml's section.
    const insecureOnly = await writePolicy('insecure.yaml', 'trust:\n  - match: "**"\n    insecureAcceptAnything: true\n');
    const r = ok(await vztpl(['pull', 'acme/unsigned:1.0.0', '--trust-policy', insecureOnly], { VZTPL_HOST_CONFIG: hostYaml }), 'pull with --trust-policy over host.yaml');
    expect(warnings(r)).toHaveLength(1);
    // The other host commands read root: from a host.yaml with a trust section.
    const list = ok(await vztpl(['templates', '--json'], { VZTPL_HOST_CONFIG: hostYaml }), 'templates');
    expect(list.stdout).toMatch(/acme\/signed/);
    expect(statSync(root).isDirectory()).toBe(true);
  });
});
