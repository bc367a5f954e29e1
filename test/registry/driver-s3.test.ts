// The shared driver suite against the S3 driver on a real S3 server (the run's Ceph RGW from
// test/global-setup.ts), each test case in its own key prefix of one bucket this file creates;
// plus what only S3 shows: an independent client (minio) reads what landed, presigned
// redirects, multipart copy, orphan uploads, errors, and a gateway that dies mid-upload.
import { randomBytes } from 'node:crypto';
import { createServer, get as httpGet } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  type MultipartUpload,
} from '@aws-sdk/client-s3';
import * as Minio from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directSendOf, PathNotFoundError } from '../../registry/storage/driver.ts';
import { S3Driver, S3StorageError, type S3DriverOptions } from '../../registry/storage/s3.ts';
import { missingCephBinaries, startRgw } from '../services/rgw.ts';
import { s3TestEnv, testDriverOptions } from '../services/s3-env.ts';
import { adminClient, emptyPrefix, listUploads } from '../services/s3-admin.ts';
import { driverSuite, expectSameBytes, readAll } from './driver-suite.ts';

const MiB = 1024 * 1024;
const env = s3TestEnv();

if (!env) {
  describe('s3 driver', () => {
    it.skip('needs an S3 server: install Ceph (scripts/setup.sh) or set VZTPL_TEST_S3_ENDPOINT', () => {});
  });
} else {
  const bucket = `vztpl-drv-${randomBytes(4).toString('hex')}`;
  const admin = adminClient(env);
  let n = 0;
  const base = testDriverOptions(env, bucket);

  beforeAll(async () => {
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(async () => {
    await emptyPrefix(admin, bucket, '');
    await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
    admin.destroy();
  });

  const makeS3 = async (opts: Partial<S3DriverOptions> = {}) => {
    const prefix = `case-${++n}-${randomBytes(3).toString('hex')}`;
    const driver = new S3Driver({ ...base, prefix, ...opts });
    return {
      driver,
      prefix,
      cleanup: async () => {
        await emptyPrefix(admin, bucket, `${prefix}/`);
        driver.destroy();
      },
    };
  };

  /** A port of 127.0.0.1 where nothing listens (one the system just gave out and took back). */
  const unusedPort = () =>
    new Promise<number>((resolve, reject) => {
      const server = createTcpServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
      server.on('error', reject);
    });

  // Unreachable: the driver as configured for the run, at an endpoint where no server listens.
  const makeUnreachable = async () => {
    const driver = new S3Driver({ ...base, prefix: 'unreachable', endpoint: `http://127.0.0.1:${await unusedPort()}`, connectionTimeout: 2000 });
    return { driver, present: '/unavailable/present', unreachable: true, cleanup: async () => driver.destroy() };
  };

  driverSuite('s3', () => makeS3(), { unavailable: makeUnreachable });

  describe('s3 driver specifics', () => {
    it('an independent client (minio) reads exactly what landed: keys are prefix + path', async () => {
      const { driver, prefix, cleanup } = await makeS3();
      try {
        await driver.checkBucket();
        const small = Buffer.from('small object\n');
        const ten = randomBytes(10 * MiB);
        const twenty = randomBytes(20 * MiB + 3);
        await driver.putContent('/docker/registry/v2/small', small);
        await driver.putContent('/docker/registry/v2/ten', ten);
        const w = await driver.writer('/docker/registry/v2/_uploads/x/data');
        await w.write(twenty);
        await w.commit();
        await driver.move('/docker/registry/v2/_uploads/x/data', '/docker/registry/v2/blobs/sha256/ab/abcd/data');
        const cancelled = await driver.writer('/docker/registry/v2/never');
        await cancelled.write(randomBytes(17 * MiB));
        await cancelled.cancel();

        const u = new URL(env.endpoint);
        const minio = new Minio.Client({
          endPoint: u.hostname,
          port: Number(u.port),
          useSSL: u.protocol === 'https:',
          accessKey: env.accessKeyId,
          secretKey: env.secretAccessKey,
          region: env.region,
          pathStyle: true,
        });
        const keys: string[] = [];
        for await (const item of minio.listObjectsV2(bucket, `${prefix}/`, true)) {
          if ((item as { name?: string }).name) keys.push((item as { name: string }).name);
        }
        expect(keys.sort()).toEqual([
          `${prefix}/docker/registry/v2/blobs/sha256/ab/abcd/data`,
          `${prefix}/docker/registry/v2/small`,
          `${prefix}/docker/registry/v2/ten`,
        ]);
        const get = async (p: string) => readAll(await minio.getObject(bucket, `${prefix}/${p}`));
        expectSameBytes(await get('docker/registry/v2/small'), small);
        expectSameBytes(await get('docker/registry/v2/ten'), ten);
        expectSameBytes(await get('docker/registry/v2/blobs/sha256/ab/abcd/data'), twenty);
        expect((await minio.statObject(bucket, `${prefix}/docker/registry/v2/blobs/sha256/ab/abcd/data`)).size).toBe(twenty.length);
        expect(await listUploads(admin, bucket, `${prefix}/`)).toEqual([]);
      } finally {
        await cleanup();
      }
    });

    it('presigned redirect URLs work with plain fetch; off unless enabled', async () => {
      const { driver, cleanup } = await makeS3({ presignRedirects: true });
      const plain = new S3Driver({ ...base, prefix: 'unused' });
      try {
        const content = randomBytes(3 * MiB + 17);
        await driver.putContent('/blobs/b1', content);
        const url = await driver.redirectURL('/blobs/b1', { method: 'GET', expiresIn: 300 });
        expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=/);
        const res = await fetch(url as string);
        expect(res.status).toBe(200);
        expectSameBytes(Buffer.from(await res.arrayBuffer()), content);
        const ranged = await fetch(url as string, { headers: { range: 'bytes=10-19' } });
        expect(ranged.status).toBe(206);
        expectSameBytes(Buffer.from(await ranged.arrayBuffer()), content.subarray(10, 20));

        const headURL = await driver.redirectURL('/blobs/b1', { method: 'HEAD' });
        const head = await fetch(headURL as string, { method: 'HEAD' });
        expect(head.status).toBe(200);
        expect(head.headers.get('content-length')).toBe(String(content.length));
        // a GET URL is not good for HEAD (the method is signed)
        expect((await fetch(url as string, { method: 'HEAD' })).status).toBe(403);

        const missing = await driver.redirectURL('/blobs/none', { method: 'GET' });
        expect((await fetch(missing as string)).status).toBe(404);
        expect(await plain.redirectURL('/blobs/b1', { method: 'GET' })).toBeUndefined();
      } finally {
        plain.destroy();
        await cleanup();
      }
    });

    it('move copies big objects with UploadPartCopy (threshold lowered for the test)', async () => {
      const { driver, cleanup } = await makeS3({ multipartCopyThreshold: 6 * MiB, multipartCopyPartSize: 5 * MiB });
      try {
        const content = randomBytes(12 * MiB + 1);
        await driver.putContent('/mc/src', content);
        await driver.move('/mc/src', '/mc/dst/blob');
        await expect(driver.stat('/mc/src')).rejects.toBeInstanceOf(PathNotFoundError);
        expectSameBytes(await driver.getContent('/mc/dst/blob'), content);
        expectSameBytes(await readAll(await driver.reader('/mc/dst/blob', 5 * MiB - 3, 10)), content.subarray(5 * MiB - 3, 5 * MiB + 7));
      } finally {
        await cleanup();
      }
    });

    it('a multipart writer has an upload in flight until commit or cancel', async () => {
      const { driver, prefix, cleanup } = await makeS3({ partSize: 5 * MiB });
      try {
        // exactly one part: no multipart upload, a single PutObject at commit
        const one = await driver.writer('/mp/one');
        await one.write(randomBytes(5 * MiB));
        expect(await listUploads(admin, bucket, `${prefix}/`)).toEqual([]);
        await one.commit();
        expect((await driver.stat('/mp/one')).size).toBe(5 * MiB);

        const w = await driver.writer('/mp/blob');
        await w.write(randomBytes(11 * MiB));
        const uploads = await listUploads(admin, bucket, `${prefix}/`);
        expect(uploads.map((u) => u.Key)).toEqual([`${prefix}/mp/blob`]);
        await w.cancel();
        expect(await listUploads(admin, bucket, `${prefix}/`)).toEqual([]);

        const w2 = await driver.writer('/mp/blob');
        await w2.write(randomBytes(11 * MiB));
        await w2.commit();
        expect(await listUploads(admin, bucket, `${prefix}/`)).toEqual([]);
        expect((await driver.stat('/mp/blob')).size).toBe(11 * MiB);
      } finally {
        await cleanup();
      }
    });

    it('errors name the operation, the key and the S3 code', async () => {
      const driver = new S3Driver({ ...base, bucket: `vztpl-missing-${randomBytes(4).toString('hex')}`, prefix: 'p' });
      try {
        const err = (await driver.getContent('/a/b').catch((e: unknown) => e)) as S3StorageError;
        expect(err).toBeInstanceOf(S3StorageError);
        expect(err.code).toBe('NoSuchBucket');
        expect(err.message).toBe('s3 GetObject p/a/b: NoSuchBucket (HTTP 404)');
        await expect(driver.checkBucket()).rejects.toThrow(/^s3 HeadBucket vztpl-missing-\w+: NotFound \(HTTP 404\)$/);
        const put = (await driver.putContent('/a/b', Buffer.from('x')).catch((e: unknown) => e)) as S3StorageError;
        expect(put.message).toMatch(/^s3 PutObject p\/a\/b: NoSuchBucket/);
        await expect(driver.list('/a')).rejects.toThrow(/ListObjectsV2 p\/a\/: NoSuchBucket/);
      } finally {
        driver.destroy();
      }
    });

    it.runIf(!env.external)('the gateway dies mid-upload: a clean, bounded error; nothing visible; the orphan is cleaned; a retry works', async () => {
      if (missingCephBinaries().length) throw new Error(`fault test needs Ceph: ${missingCephBinaries().join(', ')}`);
      // Its own RGW: stopping the shared one would disturb nothing now, but this keeps the
      // run's server out of any fault.
      const rgw = await startRgw();
      const faultAdmin = adminClient(rgw);
      const Bucket = 'fault';
      const driver = new S3Driver(testDriverOptions(rgw, Bucket, { partSize: 5 * MiB, maxAttempts: 2, connectionTimeout: 1000, socketTimeout: 5000 }));
      try {
        await faultAdmin.send(new CreateBucketCommand({ Bucket }));
        const content = randomBytes(16 * MiB);
        const w = await driver.writer('/blobs/big');
        await w.write(content.subarray(0, 6 * MiB)); // one part started: the upload exists
        expect((await listUploads(faultAdmin, Bucket)).map((u) => u.Key)).toEqual(['blobs/big']);

        await rgw.stopGateway();
        expect(rgw.pids.rgw).toBeUndefined();
        const t0 = Date.now();
        const err = await (async () => {
          await w.write(content.subarray(6 * MiB));
          await w.commit();
        })().catch((e: unknown) => e);
        const elapsed = Date.now() - t0;
        expect(elapsed).toBeLessThan(15_000);
        expect(err).toBeInstanceOf(S3StorageError);
        const e = err as S3StorageError;
        expect(e.key).toBe('blobs/big');
        expect(e.message).toMatch(/^s3 (UploadPart|CompleteMultipartUpload) blobs\/big: E[A-Z]+/);
        expect(e.code).toMatch(/^(ECONNREFUSED|ECONNRESET|EPIPE)$/);
        await expect(w.commit()).rejects.toThrow(/failed/);
        console.log(`fault: gateway down, writer failed in ${elapsed} ms: ${e.message}`);

        await rgw.startGateway();
        expect(rgw.pids.rgw).toBeGreaterThan(0);
        await expect(driver.stat('/blobs/big')).rejects.toBeInstanceOf(PathNotFoundError);
        await expect(driver.list('/blobs')).rejects.toBeInstanceOf(PathNotFoundError);
        // the abort could not reach the gateway: the orphan is still there
        expect(await listUploads(faultAdmin, Bucket)).toHaveLength(1);
        expect(await driver.abortStaleUploads(new Date(Date.now() - 3_600_000))).toBe(0); // too young
        expect(await driver.abortStaleUploads(new Date(Date.now() + 60_000))).toBe(1);
        expect(await listUploads(faultAdmin, Bucket)).toEqual([]);

        const w2 = await driver.writer('/blobs/big');
        await w2.write(content);
        await w2.commit();
        expectSameBytes(await driver.getContent('/blobs/big'), content);

        // Reading, both ways a relayed body is used, when the gateway dies in the middle: each
        // fails promptly with an error, neither ends as if the body were whole.
        const bigger = randomBytes(48 * MiB);
        const w3 = await driver.writer('/blobs/bigger');
        await w3.write(bigger);
        await w3.commit();
        const streamed = await driver.reader('/blobs/bigger');
        const sent = await driver.reader('/blobs/bigger');
        const sendTo = directSendOf(sent);
        expect(sendTo, 'a plain-HTTP endpoint relays bodies').toBeDefined();
        const senderDone = new Promise<Error | undefined>((resolve) => {
          const server = createServer((_req, res) => {
            res.writeHead(200, { 'content-length': String(bigger.length) });
            sendTo!(res, (err) => {
              server.close();
              resolve(err);
            });
          }).listen(0, '127.0.0.1');
          server.once('listening', () => {
            const port = (server.address() as AddressInfo).port;
            const request = httpGet({ host: '127.0.0.1', port, path: '/' }, (res) => {
              res.once('data', () => res.pause()); // take a little, then nothing: the relay waits
              res.on('error', () => undefined);
            });
            request.on('error', () => undefined);
          });
        });
        const pieces = streamed[Symbol.asyncIterator]();
        let got = ((await pieces.next()).value as Buffer).length;
        await new Promise((resolve) => setTimeout(resolve, 300)); // the sender is under way too
        await rgw.stopGateway();
        const t1 = Date.now();
        const streamErr = await (async () => {
          for (;;) {
            const r = await pieces.next();
            if (r.done) return new Error(`ended as whole after ${got} bytes`);
            got += (r.value as Buffer).length;
          }
        })().catch((e: unknown) => e as Error);
        expect(streamErr.message).not.toMatch(/ended as whole/);
        expect(got).toBeLessThan(bigger.length);
        const sendErr = await senderDone;
        expect(sendErr?.message).toBeDefined();
        expect(Date.now() - t1).toBeLessThan(10_000);
        console.log(`fault: gateway down mid-read: stream reader failed with "${streamErr.message}", sender with "${sendErr?.message}"`);
        await rgw.startGateway();
      } finally {
        driver.destroy();
        faultAdmin.destroy();
        await rgw.stop();
      }
    });
  });
}
