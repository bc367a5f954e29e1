// Search's in-memory index (registry/search-index.ts, catalog-changes.ts) with two registry
// instances on one fs storage, as two processes would share it: a search served from memory reads
// nothing but the catalog's change marker; a publish, a signature, a deletion through one instance
// are in the very next search of the other (and of itself), with only the changed template read
// again; the JSON search says whether each latest version is signed and by which of the
// instance's keys; a change that bypassed the markers (a crash between the two) shows once the
// index is older than its maximum age, and not before.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType } from '../../format/oci.ts';
import { buildPayload, buildSignatureManifest, publicKeyInfo, signatureLayer, signatureTag } from '../../format/sigstore/index.ts';
import { signMessage } from '../../format/sigstore/private-key.ts';
import { catalogPaths } from '../../registry/catalog.ts';
import { changePaths } from '../../registry/catalog-changes.ts';
import { buildServer } from '../../registry/server.ts';
import type { StorageDriver } from '../../registry/storage/driver.ts';
import { FsDriver } from '../../registry/storage/fs.ts';
import { paths } from '../../registry/store/paths.ts';
import { blob, pushBlob, pushImage, putManifest, randomBlob, req, templateConfig, type Digest } from '../helpers/registry-env.ts';

/** A driver that records the paths of every call made through it. */
function counting(driver: StorageDriver): { driver: StorageDriver; calls: string[] } {
  const calls: string[] = [];
  const proxy = new Proxy(driver, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(`${String(prop)} ${String(args[0])}`);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { driver: proxy, calls };
}

interface Listed {
  name: string;
  latest: string;
  digest: string;
  versions: number;
  packages: number;
  signed: boolean;
  signedBy: string[];
}

describe('catalog search index across instances', () => {
  let root: string;
  const closers: Array<() => Promise<void>> = [];
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const fingerprint = publicKeyInfo(key.publicKey).fingerprint;
  let a: { url: string; calls: string[] };
  let b: { url: string; calls: string[] };

  async function start(opts: { signatureKeys?: boolean; searchMaxAgeMs?: number } = {}) {
    const { driver, calls } = counting(new FsDriver({ root }));
    const { app } = await buildServer({ driver, ...(opts.signatureKeys ? { signatureKeys: [publicKeyInfo(key.publicKey)] } : {}), ...(opts.searchMaxAgeMs !== undefined ? { searchMaxAgeMs: opts.searchMaxAgeMs } : {}) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    closers.push(() => app.close());
    return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, calls };
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'vztpl-catalog-index-'));
    a = await start({ signatureKeys: true });
    b = await start();
  });

  afterAll(async () => {
    for (const close of closers) await close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function publish(base: string, repo: string, version: string, packages: string[]): Promise<Digest> {
    const config = templateConfig({ name: repo, version, distro: 'debian', release: '12', arch: 'x86_64', packages: packages.map((name) => ({ name, version: '1', arch: 'amd64' })) });
    return (await pushImage(base, repo, version, { config, layers: [randomBlob(300)] })).digest;
  }

  /** Signs repo@digest with the test key, as `vztpl sign` does (payload blob, config, sha256-<hex>.sig). */
  async function sign(base: string, repo: string, digest: Digest): Promise<void> {
    const payload = buildPayload(`127.0.0.1/${repo}`, digest);
    const built = buildSignatureManifest([signatureLayer(payload, signMessage(key.privateKey, payload).toString('base64'))]);
    await pushBlob(base, repo, blob(payload));
    await pushBlob(base, repo, blob(built.config, MediaType.config));
    expect((await putManifest(base, repo, signatureTag(digest), blob(built.manifest, MediaType.manifest))).status).toBe(201);
  }

  async function search(base: string, query = ''): Promise<Map<string, Listed>> {
    const res = await req(base, 'GET', `/api/v1/templates?${query}`);
    expect(res.status).toBe(200);
    return new Map((res.json() as { templates: Listed[] }).templates.map((t) => [t.name, t]));
  }

  it('a search answered from memory reads one object, the change marker; so does the home page', async () => {
    await publish(b.url, 'idx/one', '1.0.0', ['bash', 'curl']);
    expect((await search(a.url)).get('idx/one')).toMatchObject({ latest: '1.0.0', versions: 1, packages: 2, signed: false, signedBy: [] });
    a.calls.length = 0;
    expect((await search(a.url, 'package=curl')).has('idx/one')).toBe(true);
    expect((await req(a.url, 'GET', '/')).status).toBe(200);
    expect(a.calls).toEqual([`getContent ${changePaths.catalog}`, `getContent ${changePaths.catalog}`]);
  });

  it('publishes, signatures and deletions through one instance are in the next search of both; only the changed template is read again', async () => {
    await publish(a.url, 'idx/two', '1.0.0', ['bash']);
    await search(a.url);
    await search(b.url);

    // a new template, published through b
    const three = await publish(b.url, 'idx/three', '2.0.0', ['bash', 'nginx']);
    a.calls.length = 0;
    expect((await search(a.url, 'package=nginx')).get('idx/three')).toMatchObject({ latest: '2.0.0', digest: three, signed: false });
    const summariesRead = (calls: string[]) => calls.filter((c) => c.startsWith('getContent') && c.endsWith('/_summary'));
    expect(summariesRead(a.calls)).toEqual([`getContent ${catalogPaths.summary('idx/three')}`]);

    // a newer version through a: in a's own next search, and in b's
    const two = await publish(a.url, 'idx/two', '1.1.0', ['bash', 'htop']);
    for (const via of [a, b]) expect((await search(via.url, 'package=htop')).get('idx/two')).toMatchObject({ latest: '1.1.0', digest: two, versions: 2, packages: 2 });

    // signed through b: a (which has the key) names it, b says signed without a key
    await sign(b.url, 'idx/two', two);
    expect((await search(a.url)).get('idx/two')).toMatchObject({ signed: true, signedBy: [fingerprint] });
    expect((await search(b.url)).get('idx/two')).toMatchObject({ signed: true, signedBy: [] });
    // the home page shows it from the same index
    expect(await (await fetch(`${a.url}/?q=idx/two`)).text()).toContain('signed, verified');

    // the signature deleted through a
    expect((await req(a.url, 'DELETE', `/v2/idx/two/manifests/${signatureTag(two)}`)).status).toBe(202);
    expect((await search(b.url)).get('idx/two')).toMatchObject({ signed: false });

    // the latest version deleted through b: a shows the one before; the last one gone, no template
    expect((await req(b.url, 'DELETE', `/v2/idx/two/manifests/1.1.0`)).status).toBe(202);
    expect((await search(a.url)).get('idx/two')).toMatchObject({ latest: '1.0.0', versions: 1 });
    expect((await search(a.url, 'package=htop')).has('idx/two')).toBe(false);
    expect((await req(a.url, 'DELETE', `/v2/idx/two/manifests/1.0.0`)).status).toBe(202);
    expect((await search(b.url)).has('idx/two')).toBe(false);
    expect((await search(a.url)).has('idx/two')).toBe(false);
  });

  it('a change that bypassed the markers (a crash before them) shows once the index is older than its maximum age, not before', async () => {
    const c = await start({ searchMaxAgeMs: 1500 });
    await publish(c.url, 'idx/crash', '1.0.0', ['bash']);
    await publish(c.url, 'idx/crash', '1.1.0', ['bash']);
    expect((await search(c.url)).get('idx/crash')).toMatchObject({ latest: '1.1.0' });
    // the latest version's tag removed as a delete does, but the process died before the catalog heard of it
    await new FsDriver({ root }).delete(paths.tagDir('idx/crash', '1.1.0'));
    expect((await search(c.url)).get('idx/crash')).toMatchObject({ latest: '1.1.0' });
    await expect.poll(async () => (await search(c.url)).get('idx/crash')?.latest, { timeout: 5000, interval: 200 }).toBe('1.0.0');
  });
});
