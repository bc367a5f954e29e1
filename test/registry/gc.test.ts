// Garbage collection while serving: unreferenced blobs and stale uploads go, everything a
// manifest names stays, and pushes that run during a collection never publish a manifest with
// a missing blob. Run on the fs driver and, when the run has one, on S3 (RGW).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../client/registry-client.ts';
import { sha256, type Digest } from '../../format/digest.ts';
import { MediaType } from '../../format/oci.ts';
import { collectGarbage } from '../../registry/gc.ts';
import { buildServer } from '../../registry/server.ts';
import type { StorageDriver } from '../../registry/storage/driver.ts';
import { FsDriver } from '../../registry/storage/fs.ts';
import { S3Driver } from '../../registry/storage/s3.ts';
import { paths } from '../../registry/store/paths.ts';
import { adminClient } from '../services/s3-admin.ts';
import { s3TestEnv, testDriverOptions } from '../services/s3-env.ts';

interface Image {
  repo: string;
  tag: string;
  layers: Buffer[];
}

async function push(client: RegistryClient, image: Image): Promise<Digest> {
  const layerDescs = [];
  for (const layer of image.layers) {
    const digest = sha256(layer);
    if (!(await client.hasBlob(image.repo, digest))) await client.pushBlob(image.repo, digest, layer);
    layerDescs.push({ mediaType: MediaType.layerTar, digest, size: layer.length });
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layerDescs.map((l) => l.digest) }, tag: image.tag, repo: image.repo }));
  const configDigest = sha256(config);
  await client.pushBlob(image.repo, configDigest, config);
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.manifest, config: { mediaType: MediaType.config, digest: configDigest, size: config.length }, layers: layerDescs }),
  );
  return client.putManifest(image.repo, image.tag, MediaType.manifest, manifest);
}

/** Every blob the manifest names can be read back whole. */
async function pullable(client: RegistryClient, repo: string, reference: string): Promise<boolean> {
  const m = await client.getManifest(repo, reference, [MediaType.manifest]);
  const manifest = JSON.parse(m.bytes.toString()) as { config: { digest: Digest }; layers: Array<{ digest: Digest }> };
  for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
    const res = await client.getBlob(repo, d).catch((err: Error) => {
      process.stderr.write(`pullable ${repo}:${reference}: ${d}: ${err.message}\n`);
      return undefined;
    });
    if (!res) return false;
    if (sha256(Buffer.from(await res.arrayBuffer())) !== d) return false;
  }
  return true;
}

async function exists(driver: StorageDriver, path: string): Promise<boolean> {
  return driver.stat(path).then(
    () => true,
    () => false,
  );
}

function gcSuite(name: string, makeDriver: () => Promise<{ driver: StorageDriver; cleanup: () => Promise<void> }>) {
  describe(`gc on ${name}`, () => {
    let driver: StorageDriver;
    let cleanup: () => Promise<void>;
    let close: () => Promise<void>;
    let client: RegistryClient;
    let registry: Awaited<ReturnType<typeof buildServer>>['registry'];

    beforeAll(async () => {
      ({ driver, cleanup } = await makeDriver());
      const server = await buildServer({ driver, logger: process.env.VZTPL_TEST_LOG ? { level: "error" } : false });
      registry = server.registry;
      const address = await server.app.listen({ host: '127.0.0.1', port: 0 });
      client = new RegistryClient(address);
      close = () => server.app.close();
    });
    afterAll(async () => {
      await close?.();
      await cleanup?.();
    });

    it('deletes what no manifest names, keeps what one does; dry-run changes nothing', async () => {
      const shared = randomBytes(70_000);
      const onlyA = randomBytes(5_000);
      const onlyB = randomBytes(6_000);
      await push(client, { repo: 'gc/a', tag: '1.0.0', layers: [shared, onlyA] });
      const bDigest = await push(client, { repo: 'gc/b', tag: '1.0.0', layers: [shared, onlyB] });
      const upload = await registry.uploads.start('gc/b');

      // B's manifest goes: its own layer becomes garbage, the shared one is still A's.
      const res = await fetch(`${client.base}/v2/gc/b/manifests/${bDigest}`, { method: 'DELETE' });
      expect(res.status).toBe(202);

      const dry = await collectGarbage(registry, { gracePeriodMs: 0, dryRun: true });
      expect(dry.blobs.map((b) => b.digest)).toContain(sha256(onlyB));
      expect(dry.blobs.map((b) => b.digest)).not.toContain(sha256(shared));
      expect(dry.uploads.some((u) => u.endsWith(upload.id))).toBe(true);
      expect(await exists(driver, paths.blobData(sha256(onlyB)))).toBe(true);
      expect(await exists(driver, paths.uploadState('gc/b', upload.id))).toBe(true);

      // A grace period longer than the blobs' age protects them.
      const young = await collectGarbage(registry, { gracePeriodMs: 3_600_000 });
      expect(young.blobs).toEqual([]);
      expect(await exists(driver, paths.blobData(sha256(onlyB)))).toBe(true);

      const report = await collectGarbage(registry, { gracePeriodMs: 0 });
      const deleted = report.blobs.map((b) => b.digest);
      expect(deleted).toContain(sha256(onlyB));
      expect(deleted).toContain(bDigest);
      expect(deleted).not.toContain(sha256(shared));
      expect(deleted).not.toContain(sha256(onlyA));
      expect(await exists(driver, paths.blobData(sha256(onlyB)))).toBe(false);
      expect(await exists(driver, paths.uploadState('gc/b', upload.id))).toBe(false);
      expect(await exists(driver, paths.trashRoot())).toBe(false);
      expect(await pullable(client, 'gc/a', '1.0.0')).toBe(true);
      // The repository link to the deleted blob went too: HEAD says unknown, not a broken 200.
      expect(await client.hasBlob('gc/b', sha256(onlyB))).toBe(false);
    });

    it('never publishes a manifest with a missing blob while collections run', async () => {
      const base = randomBytes(50_000);
      await push(client, { repo: 'gc/race', tag: 'base', layers: [base] });
      let collecting = true;
      let runs = 0;
      const collector = (async () => {
        while (collecting) {
          // Grace 0: every blob not yet named by a manifest is fair game, the harshest case.
          await collectGarbage(registry, { gracePeriodMs: 0 });
          runs++;
        }
      })();
      const results = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) => push(client, { repo: 'gc/race', tag: `v${i}`, layers: [base, randomBytes(20_000 + i)] })),
      );
      collecting = false;
      await collector;
      expect(runs).toBeGreaterThan(0);
      const accepted = results.map((r, i) => (r.status === 'fulfilled' ? `v${i}` : undefined)).filter((t): t is string => t !== undefined);
      // Some pushes may be refused (their blobs were collected before their manifest came): a
      // clean MANIFEST_BLOB_UNKNOWN. None may be accepted and then be missing a blob.
      for (const r of results) if (r.status === 'rejected') expect(String(r.reason)).toMatch(/MANIFEST_BLOB_UNKNOWN/);
      for (const tag of accepted) expect(await pullable(client, 'gc/race', tag)).toBe(true);
      expect(await pullable(client, 'gc/race', 'base')).toBe(true);
    });

    it('with a grace period, every push during collections succeeds', async () => {
      const base = randomBytes(40_000);
      let collecting = true;
      const collector = (async () => {
        while (collecting) await collectGarbage(registry, { gracePeriodMs: 60_000 });
      })();
      const digests = await Promise.all(Array.from({ length: 8 }, (_, i) => push(client, { repo: 'gc/grace', tag: `1.0.${i}`, layers: [base, randomBytes(10_000 + i)] })));
      collecting = false;
      await collector;
      expect(digests).toHaveLength(8);
      for (let i = 0; i < 8; i++) expect(await pullable(client, 'gc/grace', `1.0.${i}`)).toBe(true);
    });
  });
}

gcSuite('fs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vztpl-gc-'));
  return { driver: new FsDriver({ root: dir }), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

const s3 = s3TestEnv();
if (s3) {
  gcSuite('s3', async () => {
    const bucket = `vztpl-gc-${randomBytes(4).toString('hex')}`;
    const admin = adminClient(s3);
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    const driver = new S3Driver(testDriverOptions(s3, bucket, { prefix: 'registry' }));
    return {
      driver,
      cleanup: async () => {
        await driver.delete("/v2").catch(() => undefined);
        admin.destroy();
      },
    };
  });
}
