// The trust policy's pieces in process: the shared glob (format/glob.ts, also the registry's
// users-file scopes), what a policy is matched against, first match wins, parse errors naming the
// file and the entry, relative key paths, and the checked copy kept in the store.
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePattern, globRegExp } from '../../format/glob.ts';
import { compilePattern as registryCompilePattern } from '../../registry/auth/glob.ts';
import { decide, loadTrustPolicy, matchRule, parseTrustPolicy, trustSubject } from '../../cache/trust-policy.ts';

describe('trust policy, in process', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'vztpl-trust-unit-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('patterns: * within a component, ** across, host:port and dots literal; the registry uses the same matcher', () => {
    const m = (pattern: string, subject: string) => globRegExp(pattern).test(subject);
    expect(m('127.0.0.1:5000/acme/**', '127.0.0.1:5000/acme/web')).toBe(true);
    expect(m('127.0.0.1:5000/acme/**', '127.0.0.1:5000/acme/a/b')).toBe(true);
    expect(m('127.0.0.1:5000/acme/**', '127.0.0.1:5000/acmex/web')).toBe(false);
    expect(m('127.0.0.1:5000/acme/**', '127x0x0x1:5000/acme/web')).toBe(false);
    expect(m('127.0.0.1:*/acme/*', '127.0.0.1:5001/acme/web')).toBe(true);
    expect(m('127.0.0.1:*/acme/*', '127.0.0.1:5001/acme/a/b')).toBe(false);
    expect(m('**/web', 'registry.example.net/acme/web')).toBe(true);
    expect(m('**', 'oci:/srv/layouts/x')).toBe(true);
    expect(m('oci:/srv/**', 'oci:/srv/layouts/x')).toBe(true);
    expect(m('a+b(c)', 'a+b(c)')).toBe(true);
    expect(registryCompilePattern).toBe(compilePattern);
    expect(compilePattern('acme/*').test('acme/web')).toBe(true);
    expect(() => compilePattern('127.0.0.1:5000/x')).toThrow(/invalid repository pattern/);
  });

  it('subjects are REGISTRY/NAME as docker references name them, or oci:DIR', () => {
    expect(trustSubject('http://127.0.0.1:5000', 'acme/web')).toBe('127.0.0.1:5000/acme/web');
    expect(trustSubject('https://Registry.Example.net', 'acme/web')).toBe('registry.example.net/acme/web');
    expect(trustSubject('oci:/srv/x', 'x')).toBe('oci:/srv/x');
  });

  it('first match wins; keys relative to the policy file; no match or no policy: insecure, saying why', async () => {
    const file = join(work, 'p.yaml');
    const policy = await parseTrustPolicy('trust:\n  - match: "r/acme/**"\n    keys: [k/a.pub, /abs/b.pub]\n  - match: "r/**"\n    insecureAcceptAnything: true\n  - match: "r/acme/x"\n    keys: [c.pub]\n', file);
    expect(policy.rules).toEqual([
      { entry: 1, match: 'r/acme/**', keys: [join(work, 'k/a.pub'), '/abs/b.pub'] },
      { entry: 2, match: 'r/**', insecureAcceptAnything: true },
      { entry: 3, match: 'r/acme/x', keys: [join(work, 'c.pub')] },
    ]);
    expect(matchRule(policy, 'r/acme/x')?.entry).toBe(1);
    expect(matchRule(policy, 'r/other')?.entry).toBe(2);
    expect(matchRule(policy, 's/other')).toBeUndefined();
    expect(decide(policy, 's/other')).toMatchObject({ verify: false, why: expect.stringMatching(/no entry of the trust policy .*p\.yaml matches s\/other/) });
    expect(decide(undefined, 'r/x')).toMatchObject({ verify: false, why: expect.stringMatching(/no trust policy/) });
    expect(decide(policy, 'r/other')).toMatchObject({ verify: false, rule: { entry: 2 } });
    expect(() => decide(policy, 'r/acme/x')).toThrow(/p\.yaml, entry 1 \(match "r\/acme\/\*\*"\): key .*k\/a\.pub: cannot read the public key/);
    // An empty list is a policy that matches nothing.
    expect((await parseTrustPolicy('trust: []\n', file)).rules).toEqual([]);
  });

  it('errors name the file and the entry (exit 2)', async () => {
    const bad = async (text: string) => parseTrustPolicy(text, '/etc/vztpl/host.yaml').then(() => 'parsed', (err: Error & { exitCode?: number }) => `${err.exitCode} ${err.message}`);
    expect(await bad('trust:\n  - match: "a b"\n    insecureAcceptAnything: true\n')).toMatch(/^2 trust policy \/etc\/vztpl\/host\.yaml: trust entry 1 \(match "a b"\), match: must be a pattern/);
    expect(await bad('trust:\n  - match: "**"\n')).toMatch(/^2 .*trust entry 1 \(match "\*\*"\): give either keys/);
    expect(await bad('trust:\n  - match: "**"\n    keys: []\n')).toMatch(/^2 .*trust entry 1 \(match "\*\*"\), keys: must name at least one public key file/);
    expect(await bad('trust:\n  - match: "**"\n    insecureAcceptAnything: true\nextra: 1\n')).toMatch(/^2 .*host\.yaml: the document: unknown field "extra"/);
    expect(await bad('trust:\n  - match: "**"\n    match: "x"\n    insecureAcceptAnything: true\n')).toMatch(/^2 .*host\.yaml:3:5: not valid YAML: Map keys must be unique/);
  });

  it('the checked policy is kept in the store and used while the text is the same', async () => {
    const root = join(work, 'store');
    const file = join(work, 'kept.yaml');
    await writeFile(file, 'trust:\n  - match: "**"\n    insecureAcceptAnything: true\n');
    expect((await loadTrustPolicy(file, root))?.rules).toHaveLength(1);
    expect(existsSync(join(root, 'trust'))).toBe(false); // no store yet: nothing written
    await import('node:fs').then((fs) => fs.mkdirSync(root));
    await loadTrustPolicy(file, root);
    expect(readdirSync(join(root, 'trust'))).toEqual([expect.stringMatching(/^policy-[0-9a-f]{8}\.json$/)]);
    await writeFile(file, 'trust:\n  - match: "r/**"\n    insecureAcceptAnything: true\n  - match: "**"\n    keys: [x.pub]\n');
    expect((await loadTrustPolicy(file, root))?.rules.map((r) => r.match)).toEqual(['r/**', '**']);
    await writeFile(file, 'trust:\n  - match: "**"\n    bad: 1\n');
    await expect(loadTrustPolicy(file, root)).rejects.toThrow(/kept\.yaml: trust entry 1 \(match "\*\*"\): unknown field "bad"/);
  });
});
