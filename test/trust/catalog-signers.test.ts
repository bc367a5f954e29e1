// The catalog names signers it was told about: `vztpl serve` with signatureKeys (the signers'
// public keys) reports, for each version, the fingerprint of a listed key whose signature
// verifies; a signature by another key is counted but named by nobody; a bad key file stops
// start-up naming it.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePublicKey } from '../../format/sigstore/public-key.ts';
import { cliEnv, freePort, makeSmallLayout, req, runCli, spawnCli, waitHealthy, type RunResult, type SmallLayout, type Spawned } from '../helpers/registry-env.ts';
import { readFile } from 'node:fs/promises';

const PASSWORD = 'catalog signers password';

describe('the catalog names the signers it knows', () => {
  let work: string;
  let server: Spawned;
  let host: string;
  let layout: SmallLayout;
  const vztpl = (args: string[], env: Record<string, string> = {}) => runCli(args, { env: cliEnv({ VZTPL_KEY_PASSWORD: PASSWORD, ...env }), timeoutMs: 120_000 });
  const ok = (r: RunResult, what: string) => expect(r.code, `${what}:\n${r.stderr}\n${r.stdout}`).toBe(0);

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'vztpl-signers-'));
    for (const k of ['a', 'b']) ok(await vztpl(['key', 'generate', join(work, k)]), `key generate ${k}`);
    layout = await makeSmallLayout(join(work, 'layout'), '1.0.0', { name: 'debian-12-x86_64', version: '1.0.0', distro: 'debian', release: '12', arch: 'x86_64', packages: [{ name: 'bash', version: '5.2.15-2+b7', arch: 'amd64' }] });
    host = `127.0.0.1:${await freePort()}`;
    server = spawnCli(['serve', '--listen', host, '--storage', `fs:${join(work, 'registry')}`], cliEnv({ VZTPL_LOG_LEVEL: 'warn', VZTPL_SIGNATURE_KEYS: join(work, 'a.pub') }));
    await waitHealthy(`http://${host}/healthz`, server);
  });

  afterAll(async () => {
    await server?.kill();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('signed by a listed key: its fingerprint; by another key: signed, named by nobody; unsigned: not signed', async () => {
    const fingerprintA = parsePublicKey(await readFile(join(work, 'a.pub'), 'utf8'), 'a.pub').fingerprint;
    ok(await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/signers/t:1.0.0`, '--sign-key', join(work, 'a.key')]), 'push a');
    ok(await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/signers/t:1.0.1`, '--sign-key', join(work, 'b.key')]), 'push b');
    ok(await vztpl(['push', `${layout.dir}:1.0.0`, `${host}/signers/u:1.0.0`]), 'push unsigned');
    const version = async (repo: string, v: string) => {
      const r = await req(`http://${host}`, 'GET', `/api/v1/templates/${repo}/versions/${v}`);
      expect(r.status).toBe(200);
      return r.json() as { signed: boolean; signedBy: string[]; signatures: { count: number; signatures: Array<{ verifiedBy?: string }> } | null };
    };
    // 1.0.0 and 1.0.1 are the same manifest: its signature manifest holds both signatures.
    const a = await version('signers/t', '1.0.0');
    expect(a.signed).toBe(true);
    expect(a.signedBy).toEqual([fingerprintA]);
    expect(a.signatures!.count).toBe(2);
    expect(a.signatures!.signatures.map((s) => s.verifiedBy ?? null).sort()).toEqual([fingerprintA, null].sort());
    const other = await version('signers/u', '1.0.0');
    expect(other.signed).toBe(false);
    expect(other.signedBy).toEqual([]);
    expect(other.signatures).toBeNull();
  });

  it('a bad key file stops serve with exit 2, naming it', async () => {
    const bad = join(work, 'bad.pub');
    await writeFile(bad, 'not a key\n');
    const r = await runCli(['serve', '--listen', `127.0.0.1:${await freePort()}`, '--storage', `fs:${join(work, 'r2')}`], { env: cliEnv({ VZTPL_SIGNATURE_KEYS: `${join(work, 'a.pub')},${bad}` }), timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(bad);
    const missing = await runCli(['serve', '--listen', `127.0.0.1:${await freePort()}`, '--storage', `fs:${join(work, 'r3')}`], { env: cliEnv({ VZTPL_SIGNATURE_KEYS: join(work, 'nope.pub') }), timeoutMs: 30_000 });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.pub');
  });
});
