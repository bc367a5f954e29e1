// The registry end-to-end suite on the S3 driver: the run's Ceph RGW (test/global-setup.ts), a
// fresh bucket and prefix for the suite run, shared by two registry instances (two S3Driver
// instances, two clients). Plus the S3 fault test at the registry level: the gateway dies while
// a blob streams in; the client gets a clean OCI 5xx, nothing is published, and the same push
// works once the gateway is back. The fault test stops a gateway, so it starts its own RGW (as
// test/registry/driver-s3.test.ts does) instead of disturbing the run's.
import { randomBytes } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { MediaType } from '../../format/oci.ts';
import { S3Driver } from '../../registry/storage/s3.ts';
import {
  digestOf,
  errorOf,
  imageManifest,
  plainConfig,
  pushBlob,
  putManifest,
  randomBlob,
  req,
  startRegistry,
  storageListing,
  type Res,
} from '../helpers/registry-env.ts';
import { missingCephBinaries, startRgw } from '../services/rgw.ts';
import { s3TestEnv, testDriverOptions } from '../services/s3-env.ts';
import { adminClient, emptyPrefix } from '../services/s3-admin.ts';
import { registrySuite } from './registry-suite.ts';

const MiB = 1024 * 1024;
const env = s3TestEnv();

if (!env) {
  describe('registry end to end on s3', () => {
    it.skip('needs an S3 server: install Ceph (scripts/setup.sh) or set VZTPL_TEST_S3_ENDPOINT', () => {});
  });
} else {
  const admin = adminClient(env);
  afterAll(() => admin.destroy());

  registrySuite('s3', async () => {
    const Bucket = `vztpl-reg-${randomBytes(4).toString('hex')}`;
    const prefix = `registry-${randomBytes(3).toString('hex')}`;
    await admin.send(new CreateBucketCommand({ Bucket }));
    const drivers: S3Driver[] = [];
    // small parts, so the suite's larger blobs go through multipart uploads too
    const opts = testDriverOptions(env, Bucket, { prefix, partSize: 5 * MiB });
    return {
      driver: () => {
        const d = new S3Driver(opts);
        drivers.push(d);
        return d;
      },
      leftovers: async () => {
        const out = await admin.send(new ListMultipartUploadsCommand({ Bucket, Prefix: `${prefix}/` }));
        return (out.Uploads ?? []).map((u) => `multipart ${u.Key}`);
      },
      cleanup: async () => {
        await emptyPrefix(admin, Bucket);
        await admin.send(new DeleteBucketCommand({ Bucket }));
        for (const d of drivers) d.destroy();
      },
    };
  });

  describe('registry on s3: the gateway dies mid-upload', () => {
    it.runIf(!env.external)('a clean OCI 5xx (no hang), nothing published, and the same push works after the gateway is back', async () => {
      if (missingCephBinaries().length) throw new Error(`fault test needs Ceph: ${missingCephBinaries().join(', ')}`);
      const rgw = await startRgw();
      const faultAdmin = adminClient(rgw);
      const Bucket = 'fault';
      const driver = new S3Driver(
        testDriverOptions(rgw, Bucket, { prefix: 'registry', partSize: 5 * MiB, maxAttempts: 2, connectionTimeout: 1000, socketTimeout: 5000 }),
      );
      const reg = await startRegistry(driver);
      try {
        await faultAdmin.send(new CreateBucketCommand({ Bucket }));
        const repo = 'fault/debian-12-x86_64';
        const config = plainConfig('fault');
        const big = randomBlob(14 * MiB);
        const small = randomBlob(1000);
        await pushBlob(reg.url, repo, config);
        await pushBlob(reg.url, repo, small);
        const manifest = imageManifest({ config, layers: [small, big] });

        /** A body of `total` bytes that sends `before` bytes, waits for `gate`, then the rest. */
        const gatedBody = (bytes: Buffer, before: number, gate: Promise<void>) => {
          let sent = 0;
          return new ReadableStream<Uint8Array>({
            async pull(c) {
              if (sent >= bytes.length) return c.close();
              if (sent >= before) await gate;
              const n = Math.min(256 * 1024, bytes.length - sent);
              c.enqueue(bytes.subarray(sent, sent + n));
              sent += n;
            },
          });
        };
        // The storage unreachable: 503 UNAVAILABLE (retry later), as JSON, in bounded time.
        const expectClean5xx = (res: Res | Error, elapsed: number, what: string) => {
          expect(elapsed, what).toBeLessThan(30_000);
          expect(res, what).not.toBeInstanceOf(Error);
          const r = res as Res;
          expect({ what, status: r.status, code: errorOf(r).code }, r.text).toEqual({ what, status: 503, code: 'UNAVAILABLE' });
          expect(r.headers.get('content-type')).toMatch(/^application\/json/);
          expect(r.headers.get('retry-after'), what).toBe('1');
        };
        const settle = async <T,>(p: Promise<T>): Promise<T | Error> => p.catch((e: unknown) => e as Error);

        // 1. chunked: the first chunk lands, the gateway dies during the second
        const start = await req(reg.url, 'POST', `/v2/${repo}/blobs/uploads/`);
        expect(start.status).toBe(202);
        const loc = new URL(start.headers.get('location')!, reg.url).toString();
        expect((await req(reg.url, 'PATCH', loc, { headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${6 * MiB - 1}` }, body: big.bytes.subarray(0, 6 * MiB) })).status).toBe(202);
        let open!: () => void;
        const gate = new Promise<void>((r) => (open = r));
        const t0 = Date.now();
        const patch = settle(
          req(reg.url, 'PATCH', loc, {
            headers: { 'content-type': 'application/octet-stream', 'content-range': `${6 * MiB}-${big.size - 1}`, 'content-length': String(big.size - 6 * MiB) },
            body: gatedBody(big.bytes.subarray(6 * MiB), 2 * MiB, gate),
          }),
        );
        await new Promise((r) => setTimeout(r, 300));
        await rgw.stopGateway();
        open();
        const patched = await patch;
        expectClean5xx(patched, Date.now() - t0, 'PATCH while the gateway is down');
        // the rest of the push fails cleanly as well while the gateway is down
        const t1 = Date.now();
        expectClean5xx(await settle(req(reg.url, 'PUT', `${loc}?digest=${big.digest}`)), Date.now() - t1, 'PUT to complete');
        const t2 = Date.now();
        expectClean5xx(await settle(putManifest(reg.url, repo, '1.0.0', manifest)), Date.now() - t2, 'manifest PUT');

        // 2. gateway back: nothing was published
        await rgw.startGateway();
        expect((await req(reg.url, 'HEAD', `/v2/${repo}/blobs/${big.digest}`)).status).toBe(404);
        for (const ref of ['1.0.0', manifest.digest, 'latest']) {
          const res = await req(reg.url, 'GET', `/v2/${repo}/manifests/${ref}`);
          expect({ ref, status: res.status, code: errorOf(res).code }).toEqual({ ref, status: 404, code: 'MANIFEST_UNKNOWN' });
        }
        expect((await storageListing(driver)).filter((l) => l.includes('/_manifests/') || l.includes(big.digest.slice(7)))).toEqual([]);

        // 3. a large streamed PUT (POST, then PUT ?digest with the whole body) when the gateway dies
        const start2 = await req(reg.url, 'POST', `/v2/${repo}/blobs/uploads/`);
        const loc2 = new URL(start2.headers.get('location')!, reg.url).toString();
        let open2!: () => void;
        const gate2 = new Promise<void>((r) => (open2 = r));
        const t3 = Date.now();
        const put = settle(
          req(reg.url, 'PUT', `${loc2}?digest=${big.digest}`, {
            headers: { 'content-type': 'application/octet-stream', 'content-length': String(big.size) },
            body: gatedBody(big.bytes, 7 * MiB, gate2),
          }),
        );
        await new Promise((r) => setTimeout(r, 500));
        await rgw.stopGateway();
        open2();
        expectClean5xx(await put, Date.now() - t3, 'streamed PUT while the gateway is down');
        await rgw.startGateway();
        expect((await req(reg.url, 'HEAD', `/v2/${repo}/blobs/${big.digest}`)).status).toBe(404);

        // 4. the same push again: it works
        await pushBlob(reg.url, repo, big);
        const ok = await putManifest(reg.url, repo, '1.0.0', manifest);
        expect(ok.status, ok.text).toBe(201);
        const got = await req(reg.url, 'GET', `/v2/${repo}/manifests/1.0.0`);
        expect(got.headers.get('docker-content-digest')).toBe(manifest.digest);
        expect(got.headers.get('content-type')).toBe(MediaType.manifest);
        expect(digestOf((await req(reg.url, 'GET', `/v2/${repo}/blobs/${big.digest}`)).body)).toBe(big.digest);
        expect((await req(reg.url, 'HEAD', `/v2/${repo}/manifests/latest`)).headers.get('docker-content-digest')).toBe(manifest.digest);
        // what the dead gateway left behind (orphan multipart uploads) is for garbage collection
        await driver.abortStaleUploads(new Date(Date.now() + 60_000));
      } finally {
        await reg.close();
        driver.destroy();
        await emptyPrefix(faultAdmin, Bucket).catch(() => undefined);
        faultAdmin.destroy();
        await rgw.stop();
      }
    });
  });
}
