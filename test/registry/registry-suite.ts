// The registry's end-to-end suite, run once per storage driver (registry-fs.test.ts,
// registry-s3.test.ts): the fastify app in-process on 127.0.0.1, spoken to with fetch, raw HTTP,
// skopeo, podman and `vztpl push`. Every test uses its own repository names, so the tests share
// one storage per suite run; two registry instances serve that storage (two apps, two driver
// instances), as two processes on one directory or one bucket would.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType } from '../../format/oci.ts';
import { catalogPaths, type TemplateSummary } from '../../registry/catalog.ts';
import { paths } from '../../registry/store/paths.ts';
import {
  blob,
  delayingDriver,
  descriptor,
  digestOf,
  errorCode,
  errorOf,
  execOk,
  imageManifest,
  makeSmallLayout,
  parseJsonLines,
  plainConfig,
  pushBlob,
  pushImage,
  putManifest,
  rand,
  randomBlob,
  rawReq,
  req,
  run,
  runCli,
  snapshot,
  startRegistry,
  templateConfig,
  type Blob,
  type RegistryStorage,
  type Res,
  type RunningRegistry,
} from '../helpers/registry-env.ts';

const OCTET = { 'content-type': 'application/octet-stream' };

/** The codes a 4xx JSON error body may carry: the distribution spec's table (code-1 to code-14). */
const SPEC_CODES = ['BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID', 'MANIFEST_UNKNOWN', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS'];

/** An error answer of either API: this status, this code, a JSON body with a message. */
function expectApiError(res: Res, status: number, code: string, what?: string): void {
  expect({ what, status: res.status, code: errorCode(res), body: res.text.slice(0, 300) }).toMatchObject({ what, status, code });
  expect(res.headers.get('content-type'), what).toMatch(/^application\/json/);
  expect(typeof errorOf(res).message, what).toBe('string');
}

/** An error answer of /v2/: a 4xx carries one of the spec's codes. */
function expectOciError(res: Res, status: number, code: string, what?: string): void {
  expectApiError(res, status, code, what);
  if (status < 500) expect(SPEC_CODES).toContain(code);
}

/** A 416 for a range or chunk out of place: the spec's BLOB_UPLOAD_INVALID, ours in the detail. */
function expectRangeInvalid(res: Res, what?: string): void {
  expectOciError(res, 416, 'BLOB_UPLOAD_INVALID', what);
  expect(errorOf(res).detail, what).toMatchObject({ vztplCode: 'RANGE_INVALID' });
}

/** Starts a chunked upload; returns its Location (absolute URL). */
async function startUpload(base: string, repo: string): Promise<string> {
  const res = await req(base, 'POST', `/v2/${repo}/blobs/uploads/`);
  expect(res.status).toBe(202);
  const loc = res.headers.get('location');
  expect(loc).toMatch(new RegExp(`^/v2/${repo}/blobs/uploads/[0-9a-f-]{36}$`));
  expect(res.headers.get('docker-upload-uuid')).toBe(loc!.split('/').pop());
  return new URL(loc!, base).toString();
}

/** One template as search answers it (GET /api/v1/templates). */
interface Listed {
  name: string;
  version: string;
  latest: string;
  digest: string;
  versions: number;
  packages: number;
}

function withDigest(location: string, digest: string): string {
  const u = new URL(location);
  u.searchParams.set('digest', digest);
  return u.toString();
}

export function registrySuite(name: string, make: () => Promise<RegistryStorage>): void {
  describe(`registry end to end on ${name}`, () => {
    let storage: RegistryStorage;
    let a: RunningRegistry;
    let b: RunningRegistry;
    const run_ = rand(3);
    /** A repository name of this suite run. */
    const repo = (what: string) => `e2e-${run_}/${what}`;

    beforeAll(async () => {
      storage = await make();
      a = await startRegistry(storage.driver());
      b = await startRegistry(storage.driver());
    });
    afterAll(async () => {
      await a?.close();
      await b?.close();
      await storage?.cleanup();
    });

    /** Runs `fn` and asserts the storage is exactly as before (listing and leftovers). */
    async function unchanged(what: string, fn: () => Promise<void>): Promise<void> {
      const before = await snapshot(storage, a.driver);
      await fn();
      const after = await snapshot(storage, a.driver);
      expect(after, `storage changed by: ${what}`).toEqual(before);
    }

    // ---- 1. every /v2/ endpoint -----------------------------------------------------------------

    it('GET/HEAD /v2/ answers with the API version header', async () => {
      for (const method of ['GET', 'HEAD']) {
        const res = await req(a.url, method, '/v2/');
        expect(res.status).toBe(200);
        expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
        if (method === 'GET') expect(res.json()).toEqual({});
      }
      const health = await req(a.url, 'GET', '/healthz');
      expect(health.status).toBe(200);
      expect(health.json()).toMatchObject({ status: 'ok' });
    });

    it('blobs: monolithic upload, HEAD and GET in full and in ranges, 416 past the end, DELETE', async () => {
      const r = repo('blobs');
      const content = randomBlob(1000);
      const up = await req(a.url, 'POST', `/v2/${r}/blobs/uploads/?digest=${content.digest}`, { headers: OCTET, body: content.bytes });
      expect(up.status).toBe(201);
      expect(up.headers.get('location')).toBe(`/v2/${r}/blobs/${content.digest}`);
      expect(up.headers.get('docker-content-digest')).toBe(content.digest);

      const head = await req(a.url, 'HEAD', `/v2/${r}/blobs/${content.digest}`);
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe('1000');
      expect(head.headers.get('docker-content-digest')).toBe(content.digest);
      expect(head.body.length).toBe(0);

      const get = await req(a.url, 'GET', `/v2/${r}/blobs/${content.digest}`);
      expect(get.status).toBe(200);
      expect(get.headers.get('content-length')).toBe('1000');
      expect(get.headers.get('accept-ranges')).toBe('bytes');
      expect(get.body.equals(content.bytes)).toBe(true);

      const ranges: Array<[string, number, number]> = [
        ['bytes=0-0', 0, 0],
        ['bytes=10-19', 10, 19],
        ['bytes=990-', 990, 999],
        ['bytes=900-5000', 900, 999], // an end past the size is cut to the size
        ['bytes=-100', 900, 999], // suffix: the last 100 bytes
        ['bytes=-5000', 0, 999], // a suffix longer than the blob is all of it
      ];
      for (const [range, start, end] of ranges) {
        const res = await req(a.url, 'GET', `/v2/${r}/blobs/${content.digest}`, { headers: { range } });
        expect(res.status, range).toBe(206);
        expect(res.headers.get('content-range'), range).toBe(`bytes ${start}-${end}/1000`);
        expect(res.headers.get('content-length'), range).toBe(String(end - start + 1));
        expect(res.body.equals(content.bytes.subarray(start, end + 1)), range).toBe(true);
      }
      const headRange = await req(a.url, 'HEAD', `/v2/${r}/blobs/${content.digest}`, { headers: { range: 'bytes=10-19' } });
      expect(headRange.status).toBe(206);
      expect(headRange.headers.get('content-range')).toBe('bytes 10-19/1000');

      for (const range of ['bytes=1000-', 'bytes=1000-1001', 'bytes=5000-6000', 'bytes=-0']) {
        const res = await req(a.url, 'GET', `/v2/${r}/blobs/${content.digest}`, { headers: { range } });
        expect(res.status, range).toBe(416);
        expect(res.headers.get('content-range'), range).toBe('bytes */1000');
        expectRangeInvalid(res, range);
      }

      // another repository does not serve it: blobs are per repository
      expect((await req(a.url, 'HEAD', `/v2/${repo('other')}/blobs/${content.digest}`)).status).toBe(404);
      expectOciError(await req(a.url, 'GET', `/v2/${repo('other')}/blobs/${content.digest}`), 404, 'BLOB_UNKNOWN');

      const del = await req(a.url, 'DELETE', `/v2/${r}/blobs/${content.digest}`);
      expect(del.status).toBe(202);
      expectOciError(await req(a.url, 'GET', `/v2/${r}/blobs/${content.digest}`), 404, 'BLOB_UNKNOWN');
      expect((await req(a.url, 'HEAD', `/v2/${r}/blobs/${content.digest}`)).status).toBe(404);
      expectOciError(await req(a.url, 'DELETE', `/v2/${r}/blobs/${content.digest}`), 404, 'BLOB_UNKNOWN');
    });

    it('blobs of several send pieces: whole and ranged GETs arrive exact; a client that hangs up mid-body leaves no open file', async () => {
      const r = repo('big-blobs');
      // 256 KiB pieces on fs: this one is four whole pieces and a partial one.
      const big = randomBlob(4 * 262144 + 12345);
      await pushBlob(a.url, r, big);
      const whole = await req(b.url, 'GET', `/v2/${r}/blobs/${big.digest}`);
      expect(whole.status).toBe(200);
      expect(whole.headers.get('content-length')).toBe(String(big.size));
      expect(whole.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
      expect(digestOf(whole.body)).toBe(big.digest);
      for (const [start, end] of [
        [262000, 524400],
        [1, 262144],
        [big.size - 5, big.size - 1],
      ] as const) {
        const part = await req(a.url, 'GET', `/v2/${r}/blobs/${big.digest}`, { headers: { range: `bytes=${start}-${end}` } });
        expect(part.status).toBe(206);
        expect(part.body.equals(big.bytes.subarray(start, end + 1)), `${start}-${end}`).toBe(true);
      }

      const openFiles = () => readdir('/proc/self/fd').then((fds) => fds.length);
      const before = await openFiles();
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve, reject) => {
          const u = new URL(a.url);
          const request = httpRequest({ host: u.hostname, port: Number(u.port), path: `/v2/${r}/blobs/${big.digest}` }, (res) => {
            res.once('data', () => {
              request.destroy();
              resolve();
            });
          });
          request.on('error', (err) => (request.destroyed ? resolve() : reject(err)));
          request.end();
        });
      }
      // The server notices the hang-ups and closes the blob files (and the sockets).
      let after = await openFiles();
      for (let i = 0; i < 50 && after > before; i++) {
        await new Promise((res) => setTimeout(res, 40));
        after = await openFiles();
      }
      expect(after).toBeLessThanOrEqual(before);
      // and goes on serving
      expect(digestOf((await req(a.url, 'GET', `/v2/${r}/blobs/${big.digest}`)).body)).toBe(big.digest);
    });

    it('uploads: POST then PUT with the body; chunked POST + 3 PATCH + PUT; the content arrives whole', async () => {
      const r = repo('uploads');
      // POST, then PUT ?digest with the whole body
      const one = randomBlob(5000);
      const loc = await startUpload(a.url, r);
      const put = await req(a.url, 'PUT', withDigest(loc, one.digest), { headers: OCTET, body: one.bytes });
      expect(put.status).toBe(201);
      expect(put.headers.get('location')).toBe(`/v2/${r}/blobs/${one.digest}`);
      expect(put.headers.get('docker-content-digest')).toBe(one.digest);
      expect((await req(a.url, 'GET', `/v2/${r}/blobs/${one.digest}`)).body.equals(one.bytes)).toBe(true);

      // chunked: three PATCHes with Content-Range, then a PUT without a body
      const whole = randomBlob(3 * 4096 + 17);
      const parts = [whole.bytes.subarray(0, 4096), whole.bytes.subarray(4096, 8192), whole.bytes.subarray(8192)];
      let location = await startUpload(a.url, r);
      let offset = 0;
      for (const part of parts) {
        const res = await req(a.url, 'PATCH', location, {
          headers: { ...OCTET, 'content-range': `${offset}-${offset + part.length - 1}`, 'content-length': String(part.length) },
          body: part,
        });
        expect(res.status).toBe(202);
        offset += part.length;
        expect(res.headers.get('range')).toBe(`0-${offset - 1}`);
        location = new URL(res.headers.get('location')!, a.url).toString();
      }
      const done = await req(a.url, 'PUT', withDigest(location, whole.digest));
      expect(done.status).toBe(201);
      expect(done.headers.get('docker-content-digest')).toBe(whole.digest);
      const got = await req(a.url, 'GET', `/v2/${r}/blobs/${whole.digest}`);
      expect(got.headers.get('content-length')).toBe(String(whole.size));
      expect(digestOf(got.body)).toBe(whole.digest);
      // the finished session is gone
      expectOciError(await req(a.url, 'GET', location), 404, 'BLOB_UPLOAD_UNKNOWN');

      // chunked with the last chunk in the PUT
      const last = randomBlob(10_000);
      const l2 = await startUpload(a.url, r);
      expect((await req(a.url, 'PATCH', l2, { headers: { ...OCTET, 'content-range': '0-5999' }, body: last.bytes.subarray(0, 6000) })).status).toBe(202);
      const fin = await req(a.url, 'PUT', withDigest(l2, last.digest), { headers: { ...OCTET, 'content-range': '6000-9999' }, body: last.bytes.subarray(6000) });
      expect(fin.status).toBe(201);
      expect(digestOf((await req(a.url, 'GET', `/v2/${r}/blobs/${last.digest}`)).body)).toBe(last.digest);

      // a streamed PATCH without Content-Range (what skopeo and podman send)
      const streamed = randomBlob(300_000);
      const l3 = await startUpload(a.url, r);
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < streamed.size; i += 65536) c.enqueue(streamed.bytes.subarray(i, i + 65536));
          c.close();
        },
      });
      const p3 = await req(a.url, 'PATCH', l3, { headers: OCTET, body });
      expect(p3.status).toBe(202);
      expect(p3.headers.get('range')).toBe(`0-${streamed.size - 1}`);
      expect((await req(a.url, 'PUT', withDigest(l3, streamed.digest))).status).toBe(201);
    });

    it('uploads: status and resume (416 on a wrong Content-Range start), cancel makes the session unknown', async () => {
      const r = repo('resume');
      const whole = randomBlob(3000);
      const loc = await startUpload(a.url, r);
      const status0 = await req(a.url, 'GET', loc);
      expect(status0.status).toBe(204);
      expect(status0.headers.get('range')).toBe('0-0');
      expect(status0.headers.get('location')).toBe(new URL(loc).pathname);

      expect((await req(a.url, 'PATCH', loc, { headers: { ...OCTET, 'content-range': '0-999' }, body: whole.bytes.subarray(0, 1000) })).status).toBe(202);
      const status1 = await req(a.url, 'GET', loc);
      expect(status1.status).toBe(204);
      expect(status1.headers.get('range')).toBe('0-999');
      expect(status1.headers.get('docker-upload-uuid')).toBe(loc.split('/').pop());

      // a chunk that does not start where the upload ends: 416, nothing appended
      for (const range of ['500-1499', '1001-2000', '0-999']) {
        const bad = await req(a.url, 'PATCH', loc, { headers: { ...OCTET, 'content-range': range }, body: whole.bytes.subarray(0, 1000) });
        expectRangeInvalid(bad, range);
      }
      expect((await req(a.url, 'GET', loc)).headers.get('range')).toBe('0-999');

      // resume where the status says
      const resumeAt = Number((await req(a.url, 'GET', loc)).headers.get('range')!.split('-')[1]) + 1;
      expect((await req(a.url, 'PATCH', loc, { headers: { ...OCTET, 'content-range': `${resumeAt}-2999` }, body: whole.bytes.subarray(resumeAt) })).status).toBe(202);
      expect((await req(a.url, 'PUT', withDigest(loc, whole.digest))).status).toBe(201);
      expect(digestOf((await req(a.url, 'GET', `/v2/${r}/blobs/${whole.digest}`)).body)).toBe(whole.digest);

      // cancel
      const other = randomBlob(100);
      const l2 = await startUpload(a.url, r);
      expect((await req(a.url, 'PATCH', l2, { headers: OCTET, body: other.bytes })).status).toBe(202);
      const del = await req(a.url, 'DELETE', l2);
      expect(del.status).toBe(204);
      expectOciError(await req(a.url, 'GET', l2), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectOciError(await req(a.url, 'PATCH', l2, { headers: OCTET, body: other.bytes }), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectOciError(await req(a.url, 'PUT', withDigest(l2, other.digest)), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectOciError(await req(a.url, 'DELETE', l2), 404, 'BLOB_UPLOAD_UNKNOWN');
      expect((await req(a.url, 'HEAD', `/v2/${r}/blobs/${other.digest}`)).status).toBe(404);

      // a state a crash cut short (it is written without fsync) is an unknown upload, not a 500
      const l3 = await startUpload(a.url, r);
      await a.driver.putContent(paths.uploadState(r, l3.split('/').pop()!), Buffer.from('{"id":"'));
      expectOciError(await req(a.url, 'PATCH', l3, { headers: OCTET, body: other.bytes }), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectOciError(await req(b.url, 'GET', l3), 404, 'BLOB_UPLOAD_UNKNOWN');
    });

    it('cross-repository mount: 201 when the source has the blob, 202 (an upload) when it does not', async () => {
      const src = repo('mount-src');
      const dst = repo('mount-dst');
      const content = randomBlob(2048);
      await pushBlob(a.url, src, content);
      expect((await req(a.url, 'HEAD', `/v2/${dst}/blobs/${content.digest}`)).status).toBe(404);

      const mounted = await req(b.url, 'POST', `/v2/${dst}/blobs/uploads/?mount=${content.digest}&from=${src}`);
      expect(mounted.status).toBe(201);
      expect(mounted.headers.get('location')).toBe(`/v2/${dst}/blobs/${content.digest}`);
      expect(mounted.headers.get('docker-content-digest')).toBe(content.digest);
      const got = await req(a.url, 'GET', `/v2/${dst}/blobs/${content.digest}`);
      expect(got.status).toBe(200);
      expect(got.body.equals(content.bytes)).toBe(true);

      // the source lacks it: an ordinary upload session instead, which works
      const absent = randomBlob(64);
      const fallback = await req(a.url, 'POST', `/v2/${dst}/blobs/uploads/?mount=${absent.digest}&from=${repo('mount-empty')}`);
      expect(fallback.status).toBe(202);
      const loc = new URL(fallback.headers.get('location')!, a.url).toString();
      expect(loc).toMatch(/\/blobs\/uploads\/[0-9a-f-]{36}$/);
      expect((await req(a.url, 'PUT', withDigest(loc, absent.digest), { headers: OCTET, body: absent.bytes })).status).toBe(201);
      // from a repository that has the digest's sibling but not this blob: still 202
      const nope = await req(a.url, 'POST', `/v2/${dst}/blobs/uploads/?mount=${randomBlob(8).digest}&from=${src}`);
      expect(nope.status).toBe(202);
      await req(a.url, 'DELETE', new URL(nope.headers.get('location')!, a.url).toString());
    });

    it('manifests by tag and digest: GET/HEAD/PUT/DELETE with Content-Type, Docker-Content-Digest and Content-Length', async () => {
      const r = repo('manifests');
      const config = plainConfig();
      const layer = randomBlob(4000);
      const m = await pushImage(a.url, r, 'stable', { config, layers: [layer], annotations: { note: 'hello' } });

      for (const ref of ['stable', m.digest]) {
        const get = await req(b.url, 'GET', `/v2/${r}/manifests/${ref}`, { headers: { accept: MediaType.manifest } });
        expect(get.status, ref).toBe(200);
        expect(get.headers.get('content-type')).toBe(MediaType.manifest);
        expect(get.headers.get('docker-content-digest')).toBe(m.digest);
        expect(get.headers.get('content-length')).toBe(String(m.size));
        expect(get.body.equals(m.bytes)).toBe(true);
        const head = await req(b.url, 'HEAD', `/v2/${r}/manifests/${ref}`);
        expect(head.status, ref).toBe(200);
        expect(head.headers.get('content-type')).toBe(MediaType.manifest);
        expect(head.headers.get('docker-content-digest')).toBe(m.digest);
        expect(head.headers.get('content-length')).toBe(String(m.size));
        expect(head.body.length).toBe(0);
      }

      // PUT answers Location and the digest; by digest too
      const config2 = plainConfig();
      await pushBlob(a.url, r, config2);
      const m2 = imageManifest({ config: config2, layers: [layer] });
      const put = await putManifest(a.url, r, m2.digest, m2);
      expect(put.status).toBe(201);
      expect(put.headers.get('location')).toBe(`/v2/${r}/manifests/${m2.digest}`);
      expect(put.headers.get('docker-content-digest')).toBe(m2.digest);
      expect((await req(a.url, 'GET', `/v2/${r}/manifests/${m2.digest}`)).body.equals(m2.bytes)).toBe(true);

      // a manifest without a mediaType field: the Content-Type says what it is
      const m3 = imageManifest({ config, layers: [layer], noMediaType: true });
      expect((await putManifest(a.url, r, 'bare', m3, MediaType.manifest)).status).toBe(201);
      const got3 = await req(a.url, 'GET', `/v2/${r}/manifests/bare`);
      expect(got3.headers.get('content-type')).toBe(MediaType.manifest);
      expect(got3.body.equals(m3.bytes)).toBe(true);

      // a tag moves (not a version)
      expect((await putManifest(a.url, r, 'stable', m2)).status).toBe(201);
      expect((await req(a.url, 'HEAD', `/v2/${r}/manifests/stable`)).headers.get('docker-content-digest')).toBe(m2.digest);

      // DELETE a tag: the tag goes, the manifest stays
      expect((await req(a.url, 'DELETE', `/v2/${r}/manifests/stable`)).status).toBe(202);
      expectOciError(await req(a.url, 'GET', `/v2/${r}/manifests/stable`), 404, 'MANIFEST_UNKNOWN');
      expect((await req(a.url, 'GET', `/v2/${r}/manifests/${m2.digest}`)).status).toBe(200);
      expectOciError(await req(a.url, 'DELETE', `/v2/${r}/manifests/stable`), 404, 'MANIFEST_UNKNOWN');

      // DELETE by digest removes the manifest and every tag on it
      expect((await putManifest(a.url, r, 'again', m)).status).toBe(201);
      expect((await req(a.url, 'DELETE', `/v2/${r}/manifests/${m.digest}`)).status).toBe(202);
      expectOciError(await req(b.url, 'GET', `/v2/${r}/manifests/${m.digest}`), 404, 'MANIFEST_UNKNOWN');
      expectOciError(await req(b.url, 'GET', `/v2/${r}/manifests/again`), 404, 'MANIFEST_UNKNOWN');
      expect((await req(b.url, 'HEAD', `/v2/${r}/manifests/${m.digest}`)).status).toBe(404);
      expectOciError(await req(a.url, 'DELETE', `/v2/${r}/manifests/${m.digest}`), 404, 'MANIFEST_UNKNOWN');
      // another repository never served it
      expectOciError(await req(a.url, 'GET', `/v2/${repo('elsewhere')}/manifests/${m2.digest}`), 404, 'MANIFEST_UNKNOWN');
    });

    it('a manifest whose revision is there but whose content is gone is unknown (404 MANIFEST_UNKNOWN), not a 500; content set aside by gc comes back', async () => {
      const r = repo('lost-manifest');
      const layer = randomBlob(100);
      const lost = await pushImage(a.url, r, 'lost', { config: plainConfig(), layers: [layer] });
      const trashed = await pushImage(a.url, r, 'trashed', { config: plainConfig(), layers: [layer, randomBlob(50)] });
      // The revision link stays; the manifest's bytes go (an object lost to the storage).
      await a.driver.delete(paths.blobData(lost.digest));
      expect(await a.driver.stat(paths.manifestRevisionLink(r, lost.digest))).toMatchObject({ isDir: false });
      for (const registry of [a, b]) {
        for (const ref of ['lost', lost.digest]) {
          expectOciError(await req(registry.url, 'GET', `/v2/${r}/manifests/${ref}`), 404, 'MANIFEST_UNKNOWN', ref);
          const head = await req(registry.url, 'HEAD', `/v2/${r}/manifests/${ref}`);
          expect({ ref, status: head.status, body: head.body.length }).toEqual({ ref, status: 404, body: 0 });
        }
      }
      // Bytes garbage collection set aside are restored by the reader.
      await a.driver.move(paths.blobData(trashed.digest), paths.trashData(trashed.digest));
      const back = await req(b.url, 'GET', `/v2/${r}/manifests/trashed`);
      expect(back.status).toBe(200);
      expect(back.body.equals(trashed.bytes)).toBe(true);
      expect((await a.driver.stat(paths.blobData(trashed.digest))).size).toBe(trashed.bytes.length);
    });

    it('an image index of two platform manifests', async () => {
      const r = repo('index');
      const layer = randomBlob(512);
      const amd = await pushImage(a.url, r, 'amd64', { config: plainConfig('amd64'), layers: [layer] });
      const arm = await pushImage(a.url, r, 'arm64', { config: plainConfig('arm64'), layers: [layer] });
      const index = blob(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.index,
          manifests: [
            { mediaType: MediaType.manifest, digest: amd.digest, size: amd.size, platform: { architecture: 'amd64', os: 'linux' } },
            { mediaType: MediaType.manifest, digest: arm.digest, size: arm.size, platform: { architecture: 'arm64', os: 'linux' } },
          ],
        }),
        MediaType.index,
      );
      const put = await putManifest(a.url, r, 'multi', index);
      expect(put.status).toBe(201);
      expect(put.headers.get('docker-content-digest')).toBe(index.digest);
      const get = await req(b.url, 'GET', `/v2/${r}/manifests/multi`, { headers: { accept: `${MediaType.index}, ${MediaType.manifest}` } });
      expect(get.status).toBe(200);
      expect(get.headers.get('content-type')).toBe(MediaType.index);
      expect(get.headers.get('docker-content-digest')).toBe(index.digest);
      expect(get.body.equals(index.bytes)).toBe(true);
      const children = (get.json() as { manifests: Array<{ digest: string }> }).manifests;
      for (const c of children) expect((await req(b.url, 'GET', `/v2/${r}/manifests/${c.digest}`)).status).toBe(200);
    });

    it('tags list: sorted, n/last pagination with a Link header', async () => {
      const r = repo('tags');
      const m = await pushImage(a.url, r, 'a', { config: plainConfig(), layers: [randomBlob(10)] });
      for (const t of ['b', 'c', 'd', 'e']) expect((await putManifest(a.url, r, t, m)).status).toBe(201);
      const all = await req(a.url, 'GET', `/v2/${r}/tags/list`);
      expect(all.status).toBe(200);
      expect(all.json()).toEqual({ name: r, tags: ['a', 'b', 'c', 'd', 'e'] });
      expect(all.headers.get('link')).toBeNull();

      const pages: string[][] = [];
      let next: string | null = `/v2/${r}/tags/list?n=2`;
      while (next) {
        const res = await req(b.url, 'GET', next);
        expect(res.status).toBe(200);
        pages.push((res.json() as { tags: string[] }).tags);
        const link = res.headers.get('link');
        if (link) {
          const mm = /^<([^>]+)>; rel="next"$/.exec(link);
          expect(mm, link).not.toBeNull();
          next = mm![1]!;
        } else next = null;
      }
      expect(pages).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
      expect((await req(a.url, 'GET', `/v2/${r}/tags/list?n=2&last=b`)).headers.get('link')).toBe(`</v2/${r}/tags/list?n=2&last=d>; rel="next"`);
      expect((await req(a.url, 'GET', `/v2/${r}/tags/list?last=c`)).json()).toEqual({ name: r, tags: ['d', 'e'] });
      expect((await req(a.url, 'GET', `/v2/${r}/tags/list?n=0`)).json()).toEqual({ name: r, tags: [] });
      expectOciError(await req(a.url, 'GET', `/v2/${repo('no-such-repo')}/tags/list`), 404, 'NAME_UNKNOWN');
    });

    it('referrers: an artifact with a subject is listed, ?artifactType= filters and says so', async () => {
      const r = repo('referrers');
      const subject = await pushImage(a.url, r, 'subject', { config: plainConfig(), layers: [randomBlob(100)] });
      const empty = blob('{}', 'application/vnd.oci.empty.v1+json');
      const sbomLayer = blob('{"sbom":true}', 'application/spdx+json');
      const sigLayer = blob('signature', 'application/vnd.example.signature');
      for (const x of [empty, sbomLayer, sigLayer]) await pushBlob(a.url, r, x);
      const subjectDesc = { mediaType: MediaType.manifest, digest: subject.digest, size: subject.size };
      const sbom = imageManifest({ config: empty, layers: [sbomLayer], subject: subjectDesc, artifactType: 'application/vnd.example.sbom', annotations: { 'org.example.kind': 'sbom' } });
      const sig = imageManifest({ config: empty, layers: [sigLayer], subject: subjectDesc, artifactType: 'application/vnd.example.signature' });
      for (const x of [sbom, sig]) {
        const put = await putManifest(a.url, r, x.digest, x);
        expect(put.status).toBe(201);
        expect(put.headers.get('oci-subject')).toBe(subject.digest);
      }

      const list = await req(b.url, 'GET', `/v2/${r}/referrers/${subject.digest}`);
      expect(list.status).toBe(200);
      expect(list.headers.get('content-type')).toBe(MediaType.index);
      expect(list.headers.get('oci-filters-applied')).toBeNull();
      const index = list.json() as { schemaVersion: number; mediaType: string; manifests: Array<Record<string, unknown>> };
      expect(index.schemaVersion).toBe(2);
      expect(index.mediaType).toBe(MediaType.index);
      const expected = [
        { mediaType: MediaType.manifest, digest: sbom.digest, size: sbom.size, artifactType: 'application/vnd.example.sbom', annotations: { 'org.example.kind': 'sbom' } },
        { mediaType: MediaType.manifest, digest: sig.digest, size: sig.size, artifactType: 'application/vnd.example.signature' },
      ].sort((x, y) => (x.digest < y.digest ? -1 : 1));
      expect(index.manifests).toEqual(expected);

      const filtered = await req(b.url, 'GET', `/v2/${r}/referrers/${subject.digest}?artifactType=${encodeURIComponent('application/vnd.example.sbom')}`);
      expect(filtered.status).toBe(200);
      expect(filtered.headers.get('oci-filters-applied')).toBe('artifactType');
      expect((filtered.json() as { manifests: unknown[] }).manifests).toEqual([expected.find((e) => e.digest === sbom.digest)]);
      const none = await req(b.url, 'GET', `/v2/${r}/referrers/${subject.digest}?artifactType=application/vnd.nothing`);
      expect(none.headers.get('oci-filters-applied')).toBe('artifactType');
      expect((none.json() as { manifests: unknown[] }).manifests).toEqual([]);

      // a subject nobody refers to: an empty index, not an error
      const lonely = await req(a.url, 'GET', `/v2/${r}/referrers/${digestOf('nothing refers to me')}`);
      expect(lonely.status).toBe(200);
      expect((lonely.json() as { manifests: unknown[] }).manifests).toEqual([]);
      expectOciError(await req(a.url, 'GET', `/v2/${r}/referrers/sha256:nothex`), 400, 'DIGEST_INVALID');
    });

    it('_catalog: every repository with a manifest, sorted, n/last pagination', async () => {
      const names = ['cat-a', 'cat-b', 'cat-c'].map(repo);
      for (const n of names) await pushImage(a.url, n, 'x', { config: plainConfig(), layers: [] });
      const full = await req(b.url, 'GET', '/v2/_catalog');
      expect(full.status).toBe(200);
      const all = (full.json() as { repositories: string[] }).repositories;
      expect(all).toEqual([...all].sort());
      for (const n of names) expect(all).toContain(n);
      expect(all).not.toContain(repo('blobs-only'));

      const pages: string[][] = [];
      let next: string | null = '/v2/_catalog?n=2';
      while (next) {
        const res = await req(a.url, 'GET', next);
        const page = (res.json() as { repositories: string[] }).repositories;
        expect(page.length).toBeLessThanOrEqual(2);
        pages.push(page);
        const link = res.headers.get('link');
        next = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1]! : null;
      }
      expect(pages.flat()).toEqual(all);
      const after = await req(a.url, 'GET', `/v2/_catalog?n=1&last=${encodeURIComponent(names[0]!)}`);
      expect((after.json() as { repositories: string[] }).repositories).toEqual([names[1]]);
      expect(after.headers.get('link')).toBe(`</v2/_catalog?n=1&last=${encodeURIComponent(names[1]!)}>; rel="next"`);
    });

    // ---- 2. versions ----------------------------------------------------------------------------

    it('semver tags are immutable: a different manifest is refused with 409, the same one is idempotent', async () => {
      const r = repo('immutable');
      const layer = randomBlob(300);
      const first = await pushImage(a.url, r, '1.0.0', { config: plainConfig('first'), layers: [layer] });
      const config2 = plainConfig('second');
      await pushBlob(a.url, r, config2);
      const second = imageManifest({ config: config2, layers: [layer] });

      let refused!: Res;
      await unchanged('a different manifest for 1.0.0', async () => {
        refused = await putManifest(b.url, r, '1.0.0', second);
      });
      expectOciError(refused, 409, 'DENIED');
      const err = errorOf(refused);
      expect(err.message).toMatch(/1\.0\.0.*published version/);
      expect(err.detail).toMatchObject({ vztplCode: 'TAG_IMMUTABLE', current: first.digest, pushed: second.digest });
      const still = await req(a.url, 'GET', `/v2/${r}/manifests/1.0.0`);
      expect(still.headers.get('docker-content-digest')).toBe(first.digest);
      expect(still.body.equals(first.bytes)).toBe(true);

      await unchanged('the same manifest for 1.0.0 again', async () => {
        const again = await putManifest(b.url, r, '1.0.0', first);
        expect(again.status).toBe(201);
        expect(again.headers.get('docker-content-digest')).toBe(first.digest);
      });
      // the other manifest under a new version is fine
      expect((await putManifest(a.url, r, '1.0.1', second)).status).toBe(201);
      // a pre-release is a version too
      expect((await putManifest(a.url, r, '2.0.0-rc.1', first)).status).toBe(201);
      const rcAgain = await putManifest(a.url, r, '2.0.0-rc.1', second);
      expectOciError(rcAgain, 409, 'DENIED');
      expect(errorOf(rcAgain).detail).toMatchObject({ vztplCode: 'TAG_IMMUTABLE' });
    });

    it('publishing 1.0.0, 1.2.0, 1.1.5, 2.0.0-rc.1 moves latest, 1, 1.2 and 1.1; a pre-release moves nothing', async () => {
      const r = repo('aliases');
      const layer = randomBlob(100);
      const digests: Record<string, string> = {};
      const tagsNow = async () => {
        const out: Record<string, string> = {};
        const tags = ((await req(a.url, 'GET', `/v2/${r}/tags/list`)).json() as { tags: string[] }).tags;
        for (const t of tags) out[t] = (await req(b.url, 'HEAD', `/v2/${r}/manifests/${t}`)).headers.get('docker-content-digest')!;
        return out;
      };
      const publish = async (v: string) => {
        // manifests without a mediaType field, as the spec allows: aliases must still move
        const m = await pushImage(a.url, r, v, { config: plainConfig(v), layers: [layer], ...(v === '1.1.5' ? { noMediaType: true } : {}) });
        digests[v] = m.digest;
      };
      await publish('1.0.0');
      expect(await tagsNow()).toEqual({ '1.0.0': digests['1.0.0'], latest: digests['1.0.0'], '1': digests['1.0.0'], '1.0': digests['1.0.0'] });
      await publish('1.2.0');
      expect(await tagsNow()).toEqual({
        '1.0.0': digests['1.0.0'],
        '1.2.0': digests['1.2.0'],
        latest: digests['1.2.0'],
        '1': digests['1.2.0'],
        '1.0': digests['1.0.0'],
        '1.2': digests['1.2.0'],
      });
      await publish('1.1.5');
      const after115 = {
        '1.0.0': digests['1.0.0'],
        '1.2.0': digests['1.2.0'],
        '1.1.5': digests['1.1.5'],
        latest: digests['1.2.0'],
        '1': digests['1.2.0'],
        '1.0': digests['1.0.0'],
        '1.1': digests['1.1.5'],
        '1.2': digests['1.2.0'],
      };
      expect(await tagsNow()).toEqual(after115);
      await publish('2.0.0-rc.1');
      expect(await tagsNow()).toEqual({ ...after115, '2.0.0-rc.1': digests['2.0.0-rc.1'] });
      // aliases carry the version's media type
      expect((await req(a.url, 'HEAD', `/v2/${r}/manifests/1.1`)).headers.get('content-type')).toBe(MediaType.manifest);
    });

    it('/api/v1 resolve: latest, ^1, ~1.1, 1.x, an exact version; unsatisfiable 404 MANIFEST_UNKNOWN, invalid 400 VERSION_RANGE_INVALID', async () => {
      const r = repo('resolve');
      const layer = randomBlob(100);
      const digests: Record<string, string> = {};
      for (const v of ['1.0.0', '1.2.0', '1.1.5', '2.0.0-rc.1']) {
        const config = templateConfig({ name: 'debian-12-x86_64', version: v, distro: 'debian', release: '12', arch: 'x86_64' });
        digests[v] = (await pushImage(a.url, r, v, { config, layers: [layer] })).digest;
      }
      const resolve = (range: string) => req(b.url, 'GET', `/api/v1/templates/${r}/resolve?range=${encodeURIComponent(range)}`);
      const cases: Array<[string, string]> = [
        ['latest', '1.2.0'],
        ['^1', '1.2.0'],
        ['~1.1', '1.1.5'],
        ['1.x', '1.2.0'],
        ['1.0.0', '1.0.0'],
        ['>=1.0.0 <1.2.0', '1.1.5'],
        ['2.0.0-rc.1', '2.0.0-rc.1'],
      ];
      for (const [range, version] of cases) {
        const res = await resolve(range);
        expect(res.status, range).toBe(200);
        expect(res.json(), range).toMatchObject({ name: r, range, version, digest: digests[version] });
      }
      const def = await req(b.url, 'GET', `/api/v1/templates/${r}/resolve`);
      expect(def.json()).toMatchObject({ version: '1.2.0', range: 'latest' });

      for (const range of ['^3', '1.3.0', '~1.3']) {
        const res = await resolve(range);
        expectApiError(res, 404, 'MANIFEST_UNKNOWN', range);
        expect(errorOf(res).message, range).toMatch(new RegExp(`satisf.*${range.replace(/[.^~]/g, '\\$&')}.*1\\.0\\.0`));
      }
      for (const range of ['not a range!', '>>1', 'x.y.z.w']) {
        const res = await resolve(range);
        // The catalog API's own code, sent as itself (not a /v2/ code such as MANIFEST_INVALID).
        expectApiError(res, 400, 'VERSION_RANGE_INVALID', range);
        expect(errorOf(res).message, range).toMatch(/invalid version range/);
        expect(errorOf(res).detail, range).toEqual({ range });
      }
      expectOciError(await req(b.url, 'GET', `/api/v1/templates/${repo('nothing-here')}/resolve?range=latest`), 404, 'NAME_UNKNOWN');
      expectOciError(await req(b.url, 'GET', `/api/v1/templates/Bad_Name/resolve`), 400, 'NAME_INVALID');
    });

    it('/api/v1 search by distro, release, arch and package; versions; metadata; package lock; diff', async () => {
      const tag = rand(3);
      const distro = `deb${tag}`;
      const other = `rhel${tag}`;
      const pkgs = (extra: Array<[string, string]>) => [
        { name: 'bash', version: '5.2.15-2', arch: 'amd64' },
        { name: 'coreutils', version: '9.1-1', arch: 'amd64' },
        ...extra.map(([name, version]) => ({ name, version, arch: 'amd64' })),
      ];
      const publish = async (r: string, spec: { version: string; distro: string; release: string; arch: string; flavor?: string; packages: Array<{ name: string; version: string; arch: string }> }) => {
        const config = templateConfig({ name: r.split('/').pop()!, ...spec });
        return pushImage(a.url, r, spec.version, { config, layers: [randomBlob(1000)] });
      };
      const base = repo(`${distro}-12-x86_64`);
      const web = repo(`${distro}-12-x86_64-web`);
      const old = repo(`${distro}-11-x86_64`);
      const arm = repo(`${distro}-12-aarch64`);
      const rh = repo(`${other}-9-x86_64`);
      await publish(base, { version: '1.0.0', distro, release: '12', arch: 'x86_64', packages: pkgs([['openssl', '3.0.11-1'], ['libold', '1.0']]) });
      const v11 = await publish(base, { version: '1.1.0', distro, release: '12', arch: 'x86_64', packages: pkgs([['openssl', '3.0.13-1'], ['curl', '7.88.1-10']]) });
      await publish(web, { version: '1.0.0', distro, release: '12', arch: 'x86_64', flavor: 'web', packages: pkgs([['nginx', '1.22.1-9']]) });
      await publish(old, { version: '3.0.0', distro, release: '11', arch: 'x86_64', packages: pkgs([]) });
      await publish(arm, { version: '1.0.0', distro, release: '12', arch: 'aarch64', packages: pkgs([['nginx', '1.22.1-9']]) });
      await publish(rh, { version: '1.0.0', distro: other, release: '9', arch: 'x86_64', packages: pkgs([['nginx', '1.20.1-14']]) });

      const search = async (q: string) => {
        const res = await req(b.url, 'GET', `/api/v1/templates?${q}`);
        expect(res.status, q).toBe(200);
        const names = (res.json() as { templates: Array<{ name: string }> }).templates.map((t) => t.name).filter((n) => n.includes(tag));
        return names.sort();
      };
      expect(await search(`distro=${distro}`)).toEqual([base, web, old, arm].sort());
      expect(await search(`distro=${distro}&release=12`)).toEqual([base, web, arm].sort());
      expect(await search(`distro=${distro}&release=12&arch=x86_64`)).toEqual([base, web].sort());
      expect(await search(`arch=aarch64`)).toEqual([arm]);
      expect(await search(`package=nginx`)).toEqual([web, arm, rh].sort());
      expect(await search(`package=nginx&distro=${other}`)).toEqual([rh]);
      expect(await search(`package=curl`)).toEqual([base]); // only the latest version counts
      expect(await search(`package=libold`)).toEqual([]);
      expect(await search(`q=${tag}-12-x86_64`)).toEqual([base, web].sort());
      const listed = ((await req(b.url, 'GET', `/api/v1/templates?distro=${distro}&release=12&arch=x86_64`)).json() as { templates: Array<Record<string, unknown>> }).templates;
      expect(listed.find((t) => t.name === base)).toMatchObject({ name: base, version: '1.1.0', latest: '1.1.0', digest: v11.digest, distro, release: '12', arch: 'x86_64', packages: 4, versions: 2 });
      expect(listed.find((t) => t.name === web)).toMatchObject({ flavor: 'web' });

      const versions = await req(b.url, 'GET', `/api/v1/templates/${base}/versions`);
      expect(versions.status).toBe(200);
      const vs = (versions.json() as { name: string; versions: Array<Record<string, unknown>> });
      expect(vs.name).toBe(base);
      expect(vs.versions.map((v) => v.version)).toEqual(['1.0.0', '1.1.0']);
      expect(vs.versions[1]).toMatchObject({ digest: v11.digest, distro, packages: 4 });

      const meta = await req(b.url, 'GET', `/api/v1/templates/${base}/versions/1.1.0`);
      expect(meta.status).toBe(200);
      const record = meta.json() as Record<string, any>;
      expect(record).toMatchObject({ name: base, version: '1.1.0', digest: v11.digest, distro, release: '12', arch: 'x86_64', created: '2024-01-01T00:00:00.000Z' });
      expect(record.labels).toMatchObject({ 'org.openvz.template.distro': distro, 'org.opencontainers.image.version': '1.1.0' });
      expect(record.packages).toEqual(pkgs([['openssl', '3.0.13-1'], ['curl', '7.88.1-10']]));
      // size: the config plus the layers
      const manifest = JSON.parse(v11.bytes.toString()) as { config: { size: number }; layers: Array<{ size: number }> };
      expect(record.size).toBe(manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0));
      expectOciError(await req(b.url, 'GET', `/api/v1/templates/${base}/versions/9.9.9`), 404, 'MANIFEST_UNKNOWN');

      const summary = await req(b.url, 'GET', `/api/v1/templates/${base}`);
      expect(summary.json()).toMatchObject({ name: base, latest: '1.1.0', versions: ['1.0.0', '1.1.0'] });

      const diff = await req(b.url, 'GET', `/api/v1/templates/${base}/diff?from=1.0.0&to=1.1.0`);
      expect(diff.status).toBe(200);
      expect(diff.json()).toEqual({
        name: base,
        from: '1.0.0',
        to: '1.1.0',
        added: [{ name: 'curl', version: '7.88.1-10', arch: 'amd64' }],
        removed: [{ name: 'libold', version: '1.0', arch: 'amd64' }],
        changed: [{ name: 'openssl', arch: 'amd64', from: '3.0.11-1', to: '3.0.13-1' }],
      });
      const back = (await req(b.url, 'GET', `/api/v1/templates/${base}/diff?from=1.1.0&to=1.0.0`)).json() as { added: unknown[]; removed: unknown[] };
      expect(back.added).toEqual([{ name: 'libold', version: '1.0', arch: 'amd64' }]);
      expectApiError(await req(b.url, 'GET', `/api/v1/templates/${base}/diff?from=1.0.0`), 400, 'UNSUPPORTED');
      expectApiError(await req(b.url, 'GET', `/api/v1/templates/${base}/diff?from=1.0.0&to=^5`), 404, 'MANIFEST_UNKNOWN');
      expectApiError(await req(b.url, 'GET', `/api/v1/templates/${base}/diff?from=1.0.0&to=${encodeURIComponent('>>1')}`), 400, 'VERSION_RANGE_INVALID');
    });

    /** The templates search lists for a query, by name. */
    async function searchFor(via: RunningRegistry, query: string): Promise<Map<string, Listed>> {
      const res = await req(via.url, 'GET', `/api/v1/templates?${query}`);
      expect(res.status, query).toBe(200);
      return new Map((res.json() as { templates: Listed[] }).templates.map((t) => [t.name, t]));
    }

    /** The catalog's stored summary of a template, read from storage; undefined when there is none. */
    async function storedSummary(r: string): Promise<TemplateSummary | undefined> {
      try {
        return JSON.parse((await a.driver.getContent(catalogPaths.summary(r))).toString('utf8')) as TemplateSummary;
      } catch (err) {
        if ((err as Error).name === 'PathNotFoundError') return undefined;
        throw err;
      }
    }

    /** Publishes a template version whose config carries `distro` and one package named after the version. */
    async function publishTemplate(via: RunningRegistry, r: string, version: string, distro: string) {
      const packages = [{ name: 'bash', version: '5.2', arch: 'amd64' }, { name: `pkg-${version}`, version: '1', arch: 'amd64' }];
      const config = templateConfig({ name: r.split('/').pop()!, version, distro, release: '12', arch: 'x86_64', packages });
      return pushImage(via.url, r, version, { config, layers: [randomBlob(500)] });
    }

    it('search follows publishes and deletions through the summaries: newer versions, a deleted latest, the last version gone', async () => {
      const distro = `sum${rand(3)}`;
      const r = repo(`${distro}-12-x86_64`);
      const find = async () => (await searchFor(b, `distro=${distro}`)).get(r);

      const v100 = await publishTemplate(a, r, '1.0.0', distro);
      // right after the publish, through the other instance, and written as a summary
      expect(await find()).toMatchObject({ name: r, version: '1.0.0', latest: '1.0.0', digest: v100.digest, versions: 1, packages: 2 });
      expect(await storedSummary(r)).toMatchObject({ versions: ['1.0.0'], latest: { version: '1.0.0', digest: v100.digest } });

      const v110 = await publishTemplate(b, r, '1.1.0', distro);
      expect(await find()).toMatchObject({ latest: '1.1.0', digest: v110.digest, versions: 2 });
      // the package filter looks at the summary's latest record
      expect((await searchFor(a, 'package=pkg-1.1.0')).has(r)).toBe(true);
      expect((await searchFor(a, 'package=pkg-1.0.0')).has(r)).toBe(false);
      // a pre-release counts as a version, but a release stays the latest
      const rc = await publishTemplate(a, r, '2.0.0-rc.1', distro);
      expect(await find()).toMatchObject({ latest: '1.1.0', versions: 3 });

      // the latest version's tag deleted: the summary is rewritten at once, the previous is the latest
      expect((await req(a.url, 'DELETE', `/v2/${r}/manifests/1.1.0`)).status).toBe(202);
      expect(await storedSummary(r)).toMatchObject({ versions: ['1.0.0', '2.0.0-rc.1'], latest: { version: '1.0.0', digest: v100.digest } });
      expect(await find()).toMatchObject({ latest: '1.0.0', digest: v100.digest, versions: 2 });
      expect((await searchFor(b, 'package=pkg-1.1.0')).has(r)).toBe(false);
      // and the aliases moved with it: latest and 1 name 1.0.0, 1.1 (no version left) is gone
      const tagDigest = async (tag: string) => (await req(b.url, 'HEAD', `/v2/${r}/manifests/${tag}`)).headers.get('docker-content-digest');
      expect(await tagDigest('latest')).toBe(v100.digest);
      expect(await tagDigest('1')).toBe(v100.digest);
      expect(await tagDigest('1.0')).toBe(v100.digest);
      expectOciError(await req(b.url, 'GET', `/v2/${r}/manifests/1.1`), 404, 'MANIFEST_UNKNOWN');
      expect((await req(a.url, 'GET', `/api/v1/templates/${r}/resolve?range=latest`)).json()).toMatchObject({ version: '1.0.0', digest: v100.digest });

      // a manifest deleted by digest takes its version tag along: only the pre-release is left
      expect((await req(b.url, 'DELETE', `/v2/${r}/manifests/${v100.digest}`)).status).toBe(202);
      expect(await find()).toMatchObject({ latest: '2.0.0-rc.1', digest: rc.digest, versions: 1 });

      // the last version gone: search drops the template
      expect((await req(a.url, 'DELETE', `/v2/${r}/manifests/2.0.0-rc.1`)).status).toBe(202);
      expect((await req(a.url, 'GET', `/v2/${r}/tags/list`)).json()).toMatchObject({ tags: [] });
      const summary = await storedSummary(r);
      expect(summary?.versions).toEqual([]);
      expect(summary?.latest).toBeUndefined();
      expect(await find()).toBeUndefined();

      // a deleted version pushed again with other content: back in search, with its new record
      const again = await publishTemplate(b, r, '1.0.0', distro);
      expect(again.digest).not.toBe(v100.digest);
      expect(await find()).toMatchObject({ latest: '1.0.0', digest: again.digest, versions: 1 });
      expect((await req(a.url, 'GET', `/api/v1/templates/${r}/versions/1.0.0`)).json()).toMatchObject({ digest: again.digest });
    });

    it('search finds templates without a summary (a registry written before summaries) and writes theirs; a summary naming a deleted version is recomputed', async () => {
      const distro = `old${rand(3)}`;
      const r = repo(`${distro}-12-x86_64`);
      const plain = repo(`${distro}-plain`);
      await publishTemplate(a, r, '1.0.0', distro);
      const v120 = await publishTemplate(a, r, '1.2.0', distro);
      await pushImage(a.url, plain, 'v1', { config: plainConfig(), layers: [randomBlob(100)] });
      // the layout the previous code left: version records and tags, no summary
      const written = await storedSummary(r);
      await a.driver.delete(catalogPaths.summary(r));
      expect(await storedSummary(r)).toBeUndefined();

      const found = await searchFor(b, `q=${distro}`);
      expect(found.get(r)).toMatchObject({ latest: '1.2.0', digest: v120.digest, versions: 2 });
      // a repository with no versions is not a template
      expect([...found.keys()]).toEqual([r]);
      // the summary search wrote is the one publishing writes
      expect(await storedSummary(r)).toEqual(written);

      // a deletion whose summary rewrite never happened (the process died in between): the
      // summary still names 1.2.0, whose tag is gone; search shows what is published
      await a.driver.delete(paths.tagDir(r, '1.2.0'));
      expect((await storedSummary(r))?.latest?.version).toBe('1.2.0');
      expect((await searchFor(a, `q=${distro}`)).get(r)).toMatchObject({ latest: '1.0.0', versions: 1 });
      expect(await storedSummary(r)).toMatchObject({ versions: ['1.0.0'], latest: { version: '1.0.0' } });
    });

    // ---- 3. bad input: the right status and code, and nothing changed in storage ---------------

    it('bad manifests: malformed JSON, schema, media type, missing blob, wrong size, over 4 MiB, digest mismatch, bad tags', async () => {
      const r = repo('bad-manifests');
      const config = plainConfig();
      const layer = randomBlob(500);
      const good = await pushImage(a.url, r, 'good', { config, layers: [layer] });
      const goodJson = JSON.parse(good.bytes.toString()) as Record<string, any>;
      const variant = (patch: (m: Record<string, any>) => void) => {
        const m = structuredClone(goodJson);
        patch(m);
        return blob(JSON.stringify(m), MediaType.manifest);
      };
      const missing = randomBlob(77);
      const cases: Array<{ what: string; ref?: string; body: Buffer; type?: string; status: number; code: string; detail?: Record<string, unknown> }> = [
        { what: 'malformed JSON', body: Buffer.from('{"schemaVersion": 2, "config": '), status: 400, code: 'MANIFEST_INVALID' },
        { what: 'not an object', body: Buffer.from('[1,2,3]'), status: 400, code: 'MANIFEST_INVALID' },
        { what: 'schemaVersion 1', body: variant((m) => (m.schemaVersion = 1)).bytes, status: 400, code: 'MANIFEST_INVALID' },
        { what: 'no layers', body: variant((m) => delete m.layers).bytes, status: 400, code: 'MANIFEST_INVALID' },
        { what: 'a bad digest', body: variant((m) => (m.layers[0].digest = 'sha256:xyz')).bytes, status: 400, code: 'MANIFEST_INVALID' },
        { what: 'a negative size', body: variant((m) => (m.config.size = -1)).bytes, status: 400, code: 'MANIFEST_INVALID' },
        { what: 'unknown media type', body: variant((m) => delete m.mediaType).bytes, type: 'application/vnd.example.unknown+json', status: 400, code: 'MANIFEST_INVALID' },
        { what: 'unknown media type in the body', body: variant((m) => (m.mediaType = 'application/vnd.example.unknown+json')).bytes, type: 'application/vnd.example.unknown+json', status: 400, code: 'MANIFEST_INVALID' },
        { what: 'mediaType and Content-Type disagree', body: good.bytes, type: MediaType.index, status: 400, code: 'MANIFEST_INVALID' },
        { what: 'a missing layer', body: variant((m) => m.layers.push(descriptor(missing))).bytes, status: 400, code: 'MANIFEST_BLOB_UNKNOWN', detail: { digests: [missing.digest] } },
        { what: 'a missing config', body: variant((m) => (m.config = descriptor(missing, { mediaType: MediaType.config }))).bytes, status: 400, code: 'MANIFEST_BLOB_UNKNOWN' },
        { what: 'a layer of another repository', ref: 'x', body: good.bytes, status: 400, code: 'MANIFEST_BLOB_UNKNOWN' },
        { what: 'a layer size that is not the blob size', body: variant((m) => (m.layers[0].size = 501)).bytes, status: 400, code: 'SIZE_INVALID' },
        { what: 'an index naming a missing manifest', body: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.index, manifests: [descriptor(missing, { mediaType: MediaType.manifest })] })), type: MediaType.index, status: 400, code: 'MANIFEST_BLOB_UNKNOWN' },
        { what: 'PUT by a digest that is not the body', ref: good.digest, body: variant((m) => (m.annotations = { x: 'y' })).bytes, status: 400, code: 'DIGEST_INVALID' },
        { what: 'PUT by a malformed digest', ref: 'sha256:1234', body: good.bytes, status: 400, code: 'DIGEST_INVALID' },
        { what: 'PUT by a digest of an algorithm not taken', ref: `sha512:${'ab'.repeat(64)}`, body: good.bytes, status: 400, code: 'DIGEST_INVALID' },
        { what: 'PUT by an uppercase digest', ref: good.digest.toUpperCase(), body: good.bytes, status: 400, code: 'DIGEST_INVALID' },
        { what: 'an invalid tag (leading dash)', ref: '-bad', body: good.bytes, status: 400, code: 'MANIFEST_INVALID', detail: { vztplCode: 'TAG_INVALID' } },
        { what: 'an invalid tag (too long)', ref: 'x'.repeat(129), body: good.bytes, status: 400, code: 'MANIFEST_INVALID', detail: { vztplCode: 'TAG_INVALID' } },
        { what: 'an invalid tag (leading dot)', ref: '.hidden', body: good.bytes, status: 400, code: 'MANIFEST_INVALID', detail: { vztplCode: 'TAG_INVALID' } },
        { what: 'an invalid tag (a plus sign)', ref: '1.0.0+build', body: good.bytes, status: 400, code: 'MANIFEST_INVALID', detail: { vztplCode: 'TAG_INVALID' } },
      ];
      for (const c of cases) {
        const target = c.what === 'a layer of another repository' ? repo('bad-manifests-other') : r;
        await unchanged(c.what, async () => {
          const res = await req(a.url, 'PUT', `/v2/${target}/manifests/${encodeURIComponent(c.ref ?? 'v1')}`, { headers: { 'content-type': c.type ?? MediaType.manifest }, body: c.body });
          expect({ what: c.what, status: res.status, code: errorCode(res) }).toEqual({ what: c.what, status: c.status, code: c.code });
          if (c.detail) expect(errorOf(res).detail).toMatchObject(c.detail);
        });
      }
      // over 4 MiB: 413, whether the size is declared up front or only seen while reading
      const huge = variant((m) => (m.annotations = { pad: 'x'.repeat(4 * 1024 * 1024) })).bytes;
      await unchanged('a manifest over 4 MiB', async () => {
        const res = await req(a.url, 'PUT', `/v2/${r}/manifests/huge`, { headers: { 'content-type': MediaType.manifest }, body: huge });
        expectOciError(res, 413, 'SIZE_INVALID');
        expect(errorOf(res).detail).toMatchObject({ vztplCode: 'MANIFEST_TOO_LARGE' });
        const streamed = await req(a.url, 'PUT', `/v2/${r}/manifests/huge`, {
          headers: { 'content-type': MediaType.manifest },
          body: new ReadableStream({
            start(c) {
              for (let i = 0; i < huge.length; i += 1 << 20) c.enqueue(huge.subarray(i, i + (1 << 20)));
              c.close();
            },
          }),
        });
        expectOciError(streamed, 413, 'SIZE_INVALID');
        expect(errorOf(streamed).detail).toMatchObject({ vztplCode: 'MANIFEST_TOO_LARGE' });
      });
      // exactly what was there before is still served
      expect((await req(a.url, 'GET', `/v2/${r}/manifests/good`)).body.equals(good.bytes)).toBe(true);
      // A reference that is neither a tag nor a digest names no manifest: 404 (PUT alone says 400).
      await unchanged('GET, HEAD and DELETE of references that are no tag and no digest', async () => {
        for (const t of ['-bad', '.hidden', 'a*b', '..', 'x'.repeat(129), 'sha256:1234', 'sha256:totallywrong', `sha512:${'ab'.repeat(64)}`, good.digest.toUpperCase(), 'a:b']) {
          const path = `/v2/${r}/manifests/${t.replace('*', '%2A')}`;
          for (const method of ['GET', 'DELETE']) {
            const res = await rawReq(a.url, method, path);
            expect({ t, method, status: res.status, code: errorCode(res) }).toEqual({ t, method, status: 404, code: 'MANIFEST_UNKNOWN' });
          }
          const head = await rawReq(a.url, 'HEAD', path);
          expect({ t, status: head.status, body: head.body.length }).toEqual({ t, status: 404, body: 0 });
        }
      });
    });

    it('layers the registry does not have: only non-distributable ones with http(s) urls; other absent blobs and other url schemes are refused, naming the layer', async () => {
      const r = repo('foreign-layers');
      const config = plainConfig();
      const present = randomBlob(200);
      await pushBlob(a.url, r, config);
      await pushBlob(a.url, r, present);
      const nonDistributable = [
        'application/vnd.oci.image.layer.nondistributable.v1.tar',
        'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
        'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
        'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
      ];
      const manifest = (layers: Array<Record<string, unknown>>, cfg: Record<string, unknown> = descriptor(config)) =>
        blob(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.manifest, config: cfg, layers: [descriptor(present), ...layers] }), MediaType.manifest);

      // accepted: absent non-distributable layers with http or https urls; pullable as manifests
      for (const [i, mediaType] of nonDistributable.entries()) {
        const absent = randomBlob(1000, mediaType);
        const url = i % 2 ? `http://mirror.example.org/${absent.digest}` : `https://mirror.example.org/${absent.digest}`;
        const m = manifest([descriptor(absent, { urls: [url] })]);
        const put = await putManifest(a.url, r, `ok-${i}`, m);
        expect({ mediaType, status: put.status, text: put.text }).toEqual({ mediaType, status: 201, text: '' });
        const got = await req(b.url, 'GET', `/v2/${r}/manifests/ok-${i}`);
        expect(got.status).toBe(200);
        expect(got.body.equals(m.bytes)).toBe(true);
      }

      // refused, changing nothing: the kind of error and the layer it names
      const absent = randomBlob(1000);
      const absentND = randomBlob(1000, nonDistributable[1]);
      const cases: Array<{ what: string; body: Blob; status: number; code: string; names: string }> = [
        { what: 'an absent ordinary layer with an https url', body: manifest([descriptor(absent, { urls: ['https://mirror.example.org/x'] })]), status: 400, code: 'MANIFEST_BLOB_UNKNOWN', names: `layer 1 ${absent.digest}` },
        { what: 'an absent zstd layer with an http url', body: manifest([descriptor(randomBlob(10, MediaType.layerZstd), { urls: ['http://mirror.example.org/x'] })]), status: 400, code: 'MANIFEST_BLOB_UNKNOWN', names: 'layer 1 sha256:' },
        { what: 'an absent non-distributable layer without urls', body: manifest([descriptor(absentND)]), status: 400, code: 'MANIFEST_BLOB_UNKNOWN', names: `layer 1 ${absentND.digest}` },
        { what: 'an absent non-distributable layer with empty urls', body: manifest([descriptor(absentND, { urls: [] })]), status: 400, code: 'MANIFEST_BLOB_UNKNOWN', names: `layer 1 ${absentND.digest}` },
        { what: 'an absent config with urls', body: manifest([], descriptor(randomBlob(10, MediaType.config), { urls: ['https://mirror.example.org/c'] })), status: 400, code: 'MANIFEST_BLOB_UNKNOWN', names: 'config sha256:' },
        ...['javascript:alert(1)', 'file:///etc/passwd', 'ftp://mirror.example.org/x', 'data:,hello', 'not a url', 'https://', '//mirror.example.org/x'].map((url) => ({
          what: `a non-distributable layer with the url ${url}`,
          body: manifest([descriptor(absentND, { urls: [url] })]),
          status: 400,
          code: 'MANIFEST_INVALID',
          names: `layer 1 (${absentND.digest})`,
        })),
        { what: 'one bad url among good ones', body: manifest([descriptor(absentND, { urls: ['https://mirror.example.org/x', 'javascript:alert(1)'] })]), status: 400, code: 'MANIFEST_INVALID', names: `layer 1 (${absentND.digest})` },
        { what: 'a present ordinary layer with a javascript: url', body: blob(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.manifest, config: descriptor(config), layers: [descriptor(present, { urls: ['javascript:alert(1)'] })] }), MediaType.manifest), status: 400, code: 'MANIFEST_INVALID', names: `layer 0 (${present.digest})` },
        { what: 'a config with a file: url', body: manifest([], descriptor(config, { urls: ['file:///etc/shadow'] })), status: 400, code: 'MANIFEST_INVALID', names: `config (${config.digest})` },
      ];
      for (const c of cases) {
        await unchanged(c.what, async () => {
          const res = await putManifest(a.url, r, '1.0.0', c.body);
          expect({ what: c.what, status: res.status, code: errorCode(res) }).toEqual({ what: c.what, status: c.status, code: c.code });
          expect(errorOf(res).message, c.what).toContain(c.names);
        });
      }
      // the version was never published: it can still be, with layers the registry has
      expectOciError(await req(a.url, 'GET', `/v2/${r}/manifests/1.0.0`), 404, 'MANIFEST_UNKNOWN');
      expect((await putManifest(a.url, r, '1.0.0', manifest([]))).status).toBe(201);
    });

    it('bad uploads: digest mismatch on completion, Content-Range that is not the body, cut-off bodies, unknown and foreign sessions', async () => {
      const r = repo('bad-uploads');
      const content = randomBlob(4096);
      const wrong = digestOf('something else');
      // monolithic POST ?digest with a digest that is not the body's
      await unchanged('monolithic upload with a wrong digest', async () => {
        const res = await req(a.url, 'POST', `/v2/${r}/blobs/uploads/?digest=${wrong}`, { headers: OCTET, body: content.bytes });
        expectOciError(res, 400, 'DIGEST_INVALID');
      });
      // ... also when a blob with the claimed digest exists already (never accept on its strength)
      const existing = randomBlob(4096);
      await pushBlob(a.url, repo('bad-uploads-elsewhere'), existing);
      await unchanged('monolithic upload claiming an existing digest', async () => {
        const res = await req(a.url, 'POST', `/v2/${r}/blobs/uploads/?digest=${existing.digest}`, { headers: OCTET, body: content.bytes });
        expectOciError(res, 400, 'DIGEST_INVALID');
      });
      await unchanged('malformed digest', async () => {
        expectOciError(await req(a.url, 'POST', `/v2/${r}/blobs/uploads/?digest=sha256:abc`, { headers: OCTET, body: content.bytes }), 400, 'DIGEST_INVALID');
        expectOciError(await req(a.url, 'POST', `/v2/${r}/blobs/uploads/?digest=md5:abc`, { headers: OCTET, body: content.bytes }), 400, 'DIGEST_INVALID');
      });
      // chunked: completion with the wrong digest; the session is dropped, nothing is published
      await unchanged('chunked upload completed with a wrong digest', async () => {
        const loc = await startUpload(a.url, r);
        expect((await req(a.url, 'PATCH', loc, { headers: { ...OCTET, 'content-range': '0-2047' }, body: content.bytes.subarray(0, 2048) })).status).toBe(202);
        expect((await req(a.url, 'PATCH', loc, { headers: { ...OCTET, 'content-range': '2048-4095' }, body: content.bytes.subarray(2048) })).status).toBe(202);
        expectOciError(await req(a.url, 'PUT', withDigest(loc, wrong)), 400, 'DIGEST_INVALID');
        expect((await req(a.url, 'HEAD', `/v2/${r}/blobs/${wrong}`)).status).toBe(404);
        expect((await req(a.url, 'HEAD', `/v2/${r}/blobs/${content.digest}`)).status).toBe(404);
        expectOciError(await req(a.url, 'GET', loc), 404, 'BLOB_UPLOAD_UNKNOWN');
      });
      await unchanged('POST + PUT with the body and a wrong digest', async () => {
        const loc = await startUpload(a.url, r);
        expectOciError(await req(a.url, 'PUT', withDigest(loc, wrong), { headers: OCTET, body: content.bytes }), 400, 'DIGEST_INVALID');
        expectOciError(await req(a.url, 'GET', loc), 404, 'BLOB_UPLOAD_UNKNOWN');
      });
      // a Content-Range whose length is not the body's: refused, nothing appended
      {
        const loc = await startUpload(a.url, r);
        await unchanged('PATCH whose Content-Range length is not the body length', async () => {
          // A Content-Range that is not the body, runs past its own total, is backwards or
          // malformed: a chunk out of order, 416 with an OCI error, and where the upload stands.
          const streamOf = (b: Buffer) =>
            new ReadableStream<Uint8Array>({
              start(c) {
                for (let i = 0; i < b.length; i += 1000) c.enqueue(b.subarray(i, i + 1000));
                c.close();
              },
            });
          const cases: Array<[string, string, Buffer | ReadableStream<Uint8Array>]> = [
            ['longer than the body (Content-Length)', '0-9999', content.bytes],
            ['shorter than the body (Content-Length)', '0-99', content.bytes],
            ['longer than the streamed body', '0-9999', streamOf(content.bytes)],
            ['shorter than the streamed body', '0-99', streamOf(content.bytes)],
            ['past its stated total', '0-4095/100', content.bytes],
            ['with an empty body', '0-4095/4096', content.bytes.subarray(0, 0)],
            ['backwards', '10-5', content.bytes],
            ['malformed', 'bytes=nonsense', content.bytes],
            ['not at the upload offset', '1-4096', content.bytes],
          ];
          for (const [what, range, body] of cases) {
            const res = await req(a.url, 'PATCH', loc, { headers: { ...OCTET, 'content-range': range }, body });
            expect({ what, status: res.status, code: errorCode(res), vztpl: errorOf(res).detail?.vztplCode }).toEqual({ what, status: 416, code: 'BLOB_UPLOAD_INVALID', vztpl: 'RANGE_INVALID' });
            expect(res.headers.get('location'), what).toBe(new URL(loc).pathname);
            expect(res.headers.get('range'), what).toBe('0-0');
            expect(res.headers.get('docker-upload-uuid'), what).toBe(loc.split('/').pop());
          }
          // the closing PUT with an out-of-order final chunk: 416 too, and the session stays
          const put = await req(a.url, 'PUT', withDigest(loc, content.digest), { headers: { ...OCTET, 'content-range': '0-99/4096' }, body: content.bytes });
          expectOciError(put, 416, 'BLOB_UPLOAD_INVALID');
        });
        expect((await req(a.url, 'GET', loc)).headers.get('range')).toBe('0-0');
        // a Content-Range with its total, consistent, is taken
        const ok = await req(a.url, 'PATCH', loc, { headers: { ...OCTET, 'content-range': '0-2047/4096' }, body: content.bytes.subarray(0, 2048) });
        expect(ok.status).toBe(202);
        expect(ok.headers.get('range')).toBe('0-2047');
        const late = await req(a.url, 'PUT', withDigest(loc, content.digest), { headers: { ...OCTET, 'content-range': '0-2047' }, body: content.bytes.subarray(2048) });
        expectOciError(late, 416, 'BLOB_UPLOAD_INVALID');
        expect(late.headers.get('range')).toBe('0-2047');
        expect((await req(a.url, 'GET', loc)).headers.get('range')).toBe('0-2047');
        const fin = await req(a.url, 'PUT', withDigest(loc, content.digest), { headers: { ...OCTET, 'content-range': '2048-4095/4096' }, body: content.bytes.subarray(2048) });
        expect(fin.status).toBe(201);
        expect(digestOf((await req(a.url, 'GET', `/v2/${r}/blobs/${content.digest}`)).body)).toBe(content.digest);
        expect((await req(a.url, 'DELETE', `/v2/${r}/blobs/${content.digest}`)).status).toBe(202);
      }
      // a body cut off before its Content-Length: the request dies, nothing is left behind
      await unchanged('monolithic upload cut off mid-body', async () => {
        const { connect } = await import('node:net');
        const u = new URL(a.url);
        await new Promise<void>((resolve, reject) => {
          const sock = connect(Number(u.port), u.hostname, () => {
            sock.write(`POST /v2/${r}/blobs/uploads/?digest=${content.digest} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${content.size}\r\n\r\n`);
            sock.write(content.bytes.subarray(0, 1000), () => setTimeout(() => sock.destroy(), 300));
          });
          sock.on('close', () => resolve());
          sock.on('error', reject);
        });
        await new Promise((res) => setTimeout(res, 1000)); // let the server notice and clean up
      });
      // unknown, malformed and foreign session ids
      const foreign = await startUpload(a.url, repo('bad-uploads-foreign'));
      const foreignId = foreign.split('/').pop()!;
      await unchanged('requests to sessions that do not exist', async () => {
        const ids = [crypto.randomUUID(), 'not-a-uuid', foreignId, '00000000-0000-0000-0000-000000000000'];
        for (const id of ids) {
          const path = `/v2/${r}/blobs/uploads/${id}`;
          expectOciError(await req(a.url, 'GET', path), 404, 'BLOB_UPLOAD_UNKNOWN');
          expectOciError(await req(a.url, 'PATCH', path, { headers: OCTET, body: content.bytes }), 404, 'BLOB_UPLOAD_UNKNOWN');
          expectOciError(await req(a.url, 'PUT', `${path}?digest=${content.digest}`, { headers: OCTET, body: content.bytes }), 404, 'BLOB_UPLOAD_UNKNOWN');
          expectOciError(await req(a.url, 'DELETE', path), 404, 'BLOB_UPLOAD_UNKNOWN');
        }
        // path tricks in the session id: an id that is no session's is an unknown upload; one
        // whose %2F makes more path segments is no endpoint at all
        for (const [id, status, code] of [
          ['..%2F..%2Fx', 404, 'UNSUPPORTED'],
          ['%2e%2e', 404, 'BLOB_UPLOAD_UNKNOWN'],
          ['a%00b', 404, 'BLOB_UPLOAD_UNKNOWN'],
        ] as const) {
          expectOciError(await rawReq(a.url, 'PATCH', `/v2/${r}/blobs/uploads/${id}`, { headers: OCTET, body: content.bytes }), status, code, id);
        }
        // PUT without ?digest
        expectOciError(await req(a.url, 'PUT', foreign.replace('bad-uploads-foreign', 'bad-uploads')), 400, 'DIGEST_INVALID');
      });
      expect((await req(a.url, 'GET', foreign)).status).toBe(204); // the foreign session is intact
      await req(a.url, 'DELETE', foreign);
    });

    it('invalid repository names are refused on every endpoint (uppercase, .., _x, %2e%2e, //)', async () => {
      const content = randomBlob(10);
      const m = imageManifest({ config: plainConfig(), layers: [] });
      const names = ['Upper', 'UPPER/case', 'a/../b', '..', 'x/..', 'a/_layers', '_x', 'a/_uploads/b', 'a//b', '/a', 'a/', 'a..b', '-a', 'a-', 'a%2e%2e/b', '%2e%2e', 'a/%2e%2e/b', 'a%2F..%2Fb', 'a%20b', 'a%00b', 'a.', 'a:b', 'x'.repeat(256)];
      await unchanged('requests naming invalid repositories', async () => {
        for (const n of names) {
          const probes: Array<[string, string, Buffer | undefined, Record<string, string>]> = [
            ['GET', `/v2/${n}/tags/list`, undefined, {}],
            ['GET', `/v2/${n}/manifests/latest`, undefined, {}],
            ['PUT', `/v2/${n}/manifests/latest`, m.bytes, { 'content-type': MediaType.manifest }],
            ['HEAD', `/v2/${n}/blobs/${content.digest}`, undefined, {}],
            ['POST', `/v2/${n}/blobs/uploads/?digest=${content.digest}`, content.bytes, OCTET],
            ['POST', `/v2/${n}/blobs/uploads/`, undefined, {}],
            ['GET', `/v2/${n}/referrers/${content.digest}`, undefined, {}],
          ];
          for (const [method, path, body, headers] of probes) {
            const res = await rawReq(a.url, method, path, { headers, body });
            // HEAD: the same status, and no body to carry a code
            if (method === 'HEAD') expect({ path, status: res.status, body: res.body.length }).toEqual({ path, status: 400, body: 0 });
            else expectOciError(res, 400, 'NAME_INVALID', `${method} ${path}`);
          }
        }
        // the plain cases are NAME_INVALID precisely
        for (const n of ['Upper', 'a//b', '_x', 'a/_layers', 'a%2e%2e/b', 'a..b']) {
          expectOciError(await rawReq(a.url, 'GET', `/v2/${n}/tags/list`), 400, 'NAME_INVALID');
          expectOciError(await rawReq(a.url, 'POST', `/v2/${n}/blobs/uploads/`), 400, 'NAME_INVALID');
        }
        // the catalog API checks names too
        expectOciError(await rawReq(a.url, 'GET', `/api/v1/templates/a/../b/versions`), 400, 'NAME_INVALID');
      });
    });

    it('unknown endpoints and methods, and a range past the end, change nothing', async () => {
      const r = repo('misc');
      const content = randomBlob(100);
      await pushImage(a.url, r, 'x', { config: plainConfig(), layers: [content] });
      await unchanged('unknown endpoints', async () => {
        // no such endpoint: 404; an endpoint without that method: 405; UNSUPPORTED both
        for (const [method, path, status] of [
          ['GET', `/v2/${r}/nothing/here`, 404],
          ['GET', `/v2/${r}/blobs`, 404],
          ['GET', '/v3/', 404],
          ['GET', '/nothing', 404],
          ['DELETE', `/v2/${r}/tags/list`, 405],
          ['POST', `/v2/${r}/manifests/latest`, 405],
          ['PATCH', `/v2/${r}/blobs/${content.digest}`, 405],
          ['PUT', '/v2/_catalog', 405],
          ['DELETE', '/v2/', 405],
        ] as const) {
          const res = await req(a.url, method, path, method === 'GET' ? {} : { headers: OCTET, body: 'x' });
          expectOciError(res, status, 'UNSUPPORTED', `${method} ${path}`);
        }
        const range = await req(a.url, 'GET', `/v2/${r}/blobs/${content.digest}`, { headers: { range: 'bytes=100-200' } });
        expectRangeInvalid(range);
        expect(range.headers.get('content-range')).toBe('bytes */100');
        expectOciError(await req(a.url, 'GET', `/v2/${r}/blobs/sha256:short`), 404, 'BLOB_UNKNOWN');
        expectOciError(await req(a.url, 'GET', `/v2/${r}/tags/list?n=-1`), 400, 'UNSUPPORTED');
      });
    });

    it("every /v2/ endpoint's failures as the spec's table gives them (end-1 to end-14), each with its exact OCI code", async () => {
      const r = repo('spec-table');
      const content = randomBlob(300);
      const m = await pushImage(a.url, r, 'there', { config: plainConfig(), layers: [content] });
      const nowhere = repo('spec-table-nowhere'); // a valid name no one pushed to
      const unknown = digestOf('nobody pushed this');
      const sha512 = `sha512:${'ab'.repeat(64)}`;
      // syntactically no sha256 digest: names nothing here
      const malformed = ['sha256:short', 'sha256:totallywrong', `sha256:${'A'.repeat(64)}`, sha512, 'md5:abc', 'nodigest'];
      const emptyBlob = blob('');

      await unchanged('reads and deletes of things that are not there', async () => {
        // end-2: GET/HEAD blob -> 404 BLOB_UNKNOWN, also for a repository no one pushed to and for
        // a digest that is malformed or of another algorithm
        for (const [rr, d] of [[r, unknown], [nowhere, unknown], [nowhere, content.digest], ...malformed.map((x) => [r, x])] as const) {
          expectOciError(await rawReq(a.url, 'GET', `/v2/${rr}/blobs/${d}`), 404, 'BLOB_UNKNOWN');
          const head = await rawReq(a.url, 'HEAD', `/v2/${rr}/blobs/${d}`);
          expect({ d, status: head.status, body: head.body.length }).toEqual({ d, status: 404, body: 0 });
          // end-10: DELETE of a blob that is not there -> 404 BLOB_UNKNOWN
          expectOciError(await rawReq(a.url, 'DELETE', `/v2/${rr}/blobs/${d}`), 404, 'BLOB_UNKNOWN');
        }
        // end-3 and end-9: GET/HEAD/DELETE manifest of an unknown tag or digest, here or in a
        // repository no one pushed to -> 404 MANIFEST_UNKNOWN
        for (const [rr, ref] of [[r, 'nope'], [r, unknown], [nowhere, 'there'], [nowhere, m.digest], [nowhere, '.bad']] as const) {
          expectOciError(await rawReq(a.url, 'GET', `/v2/${rr}/manifests/${ref}`), 404, 'MANIFEST_UNKNOWN');
          const head = await rawReq(a.url, 'HEAD', `/v2/${rr}/manifests/${ref}`);
          expect({ ref, status: head.status, body: head.body.length }).toEqual({ ref, status: 404, body: 0 });
          expectOciError(await rawReq(a.url, 'DELETE', `/v2/${rr}/manifests/${ref}`), 404, 'MANIFEST_UNKNOWN');
        }
        // end-8: tags of a repository that is not there -> 404 NAME_UNKNOWN
        expectOciError(await req(a.url, 'GET', `/v2/${nowhere}/tags/list`), 404, 'NAME_UNKNOWN');
        expectOciError(await req(a.url, 'GET', `/v2/${nowhere}/tags/list?n=1&last=a`), 404, 'NAME_UNKNOWN');
        // end-12: referrers never 404: an empty index for unknown subjects and repositories and
        // for a valid digest of another algorithm; a malformed digest is 400 DIGEST_INVALID
        for (const [rr, d] of [[r, unknown], [nowhere, unknown], [r, sha512]] as const) {
          const res = await req(a.url, 'GET', `/v2/${rr}/referrers/${d}`);
          expect({ d, status: res.status, type: res.headers.get('content-type') }).toEqual({ d, status: 200, type: MediaType.index });
          expect(res.json()).toEqual({ schemaVersion: 2, mediaType: MediaType.index, manifests: [] });
        }
        for (const d of ['sha256:short', 'sha256:nothex', `sha256:${'A'.repeat(64)}`, 'md5:abc', 'nodigest', `sha512:${'ab'.repeat(32)}`]) {
          expectOciError(await req(a.url, 'GET', `/v2/${r}/referrers/${d}`), 400, 'DIGEST_INVALID');
        }
        // end-13, end-14 (and end-5, end-6): a session that is not there -> 404 BLOB_UPLOAD_UNKNOWN
        const gone = `/v2/${r}/blobs/uploads/${crypto.randomUUID()}`;
        expectOciError(await req(a.url, 'GET', gone), 404, 'BLOB_UPLOAD_UNKNOWN');
        expectOciError(await req(a.url, 'DELETE', gone), 404, 'BLOB_UPLOAD_UNKNOWN');
        expectOciError(await req(a.url, 'PATCH', gone, { headers: { ...OCTET, 'content-range': '0-299' }, body: content.bytes }), 404, 'BLOB_UPLOAD_UNKNOWN');
        expectOciError(await req(a.url, 'PUT', withDigest(new URL(gone, a.url).toString(), content.digest), { headers: OCTET, body: content.bytes }), 404, 'BLOB_UPLOAD_UNKNOWN');
        // end-4b: a malformed or unsupported digest -> 400 DIGEST_INVALID, nothing stored
        for (const d of malformed) {
          expectOciError(await req(a.url, 'POST', `/v2/${r}/blobs/uploads/?digest=${encodeURIComponent(d)}`, { headers: OCTET, body: content.bytes }), 400, 'DIGEST_INVALID');
        }
        // methods an endpoint does not have -> 405 UNSUPPORTED, whatever the reference
        for (const [method, path] of [
          ['POST', `/v2/${r}/manifests/there`],
          ['POST', `/v2/${r}/manifests/.bad`],
          ['PATCH', `/v2/${r}/manifests/${m.digest}`],
          ['PUT', `/v2/${r}/blobs/${content.digest}`],
          ['POST', `/v2/${r}/tags/list`],
          ['DELETE', `/v2/${r}/referrers/${m.digest}`],
          ['POST', '/v2/'],
        ] as const) {
          expectOciError(await rawReq(a.url, method, path, { headers: { ...OCTET, 'content-length': '1' }, body: Buffer.from('x') }), 405, 'UNSUPPORTED');
        }
      });

      // end-1
      const base = await req(a.url, 'GET', '/v2/');
      expect(base.status).toBe(200);
      // end-4a: 202, Location with a UUID, Range 0-0, Docker-Upload-UUID
      const loc = await startUpload(a.url, r);
      const started = await req(a.url, 'GET', loc);
      expect({ status: started.status, range: started.headers.get('range') }).toEqual({ status: 204, range: '0-0' }); // end-13
      // end-6: the closing PUT without a digest, or with a malformed one -> 400 DIGEST_INVALID;
      // the session stays
      expectOciError(await req(a.url, 'PUT', loc, { headers: OCTET, body: content.bytes }), 400, 'DIGEST_INVALID');
      expectOciError(await req(a.url, 'PUT', withDigest(loc, 'sha256:short'), { headers: OCTET, body: content.bytes }), 400, 'DIGEST_INVALID');
      expect((await req(a.url, 'GET', loc)).status).toBe(204);
      // end-5: 202 with Location and Range; end-6: 201 with Location and Docker-Content-Digest
      const patched = await req(a.url, 'PATCH', loc, { headers: { ...OCTET, 'content-range': '0-299' }, body: content.bytes });
      expect({ status: patched.status, location: patched.headers.get('location'), range: patched.headers.get('range') }).toEqual({ status: 202, location: new URL(loc).pathname, range: '0-299' });
      const closed = await req(a.url, 'PUT', withDigest(loc, content.digest));
      expect({ status: closed.status, location: closed.headers.get('location'), digest: closed.headers.get('docker-content-digest') }).toEqual({
        status: 201,
        location: `/v2/${r}/blobs/${content.digest}`,
        digest: content.digest,
      });
      // end-14: 204, and the session is gone
      const l2 = await startUpload(a.url, r);
      expect((await req(a.url, 'DELETE', l2)).status).toBe(204);
      expectOciError(await req(a.url, 'GET', l2), 404, 'BLOB_UPLOAD_UNKNOWN');
      // end-4b: an empty blob in one POST
      const empty = await req(a.url, 'POST', `/v2/${r}/blobs/uploads/?digest=${emptyBlob.digest}`, { headers: OCTET, body: Buffer.alloc(0) });
      expect({ status: empty.status, location: empty.headers.get('location'), digest: empty.headers.get('docker-content-digest') }).toEqual({
        status: 201,
        location: `/v2/${r}/blobs/${emptyBlob.digest}`,
        digest: emptyBlob.digest,
      });
      const emptyGet = await req(a.url, 'GET', `/v2/${r}/blobs/${emptyBlob.digest}`);
      expect({ status: emptyGet.status, length: emptyGet.headers.get('content-length'), digest: emptyGet.headers.get('docker-content-digest') }).toEqual({ status: 200, length: '0', digest: emptyBlob.digest });
      // ... of which no range can be had
      const emptyRange = await req(a.url, 'GET', `/v2/${r}/blobs/${emptyBlob.digest}`, { headers: { range: 'bytes=0-' } });
      expect({ status: emptyRange.status, range: emptyRange.headers.get('content-range') }).toEqual({ status: 416, range: 'bytes */0' });
      // end-11: a mount the registry cannot do starts an upload (202): a malformed digest, an
      // invalid or absent source, a source without the blob
      for (const q of [`mount=sha256:short&from=${r}`, `mount=${content.digest}&from=Bad_Name`, `mount=${content.digest}`, `mount=${unknown}&from=${r}`, `mount=${content.digest}&from=${nowhere}`]) {
        const res = await req(a.url, 'POST', `/v2/${repo('spec-table-dst')}/blobs/uploads/?${q}`);
        expect({ q, status: res.status }).toEqual({ q, status: 202 });
        expect(res.headers.get('location')).toMatch(/\/blobs\/uploads\/[0-9a-f-]{36}$/);
        expect((await req(a.url, 'DELETE', new URL(res.headers.get('location')!, a.url).toString())).status).toBe(204);
      }
      const mounted = await req(a.url, 'POST', `/v2/${repo('spec-table-dst')}/blobs/uploads/?mount=${content.digest}&from=${r}`);
      expect({ status: mounted.status, location: mounted.headers.get('location'), digest: mounted.headers.get('docker-content-digest') }).toEqual({
        status: 201,
        location: `/v2/${repo('spec-table-dst')}/blobs/${content.digest}`,
        digest: content.digest,
      });
      // end-2 with Range: another unit is ignored, so are several ranges (the whole blob); a
      // backwards range is 416
      for (const range of ['items=0-5', 'bytes=0-1,5-6']) {
        const res = await req(a.url, 'GET', `/v2/${r}/blobs/${content.digest}`, { headers: { range } });
        expect({ range, status: res.status, length: res.headers.get('content-length') }).toEqual({ range, status: 200, length: '300' });
        expect(res.body.equals(content.bytes)).toBe(true);
      }
      for (const range of ['bytes=200-100', 'bytes=abc', 'bytes=300-']) {
        const res = await req(a.url, 'GET', `/v2/${r}/blobs/${content.digest}`, { headers: { range } });
        expect({ range, status: res.status, range416: res.headers.get('content-range') }).toEqual({ range, status: 416, range416: 'bytes */300' });
        expectOciError(res, 416, 'BLOB_UPLOAD_INVALID');
      }
      // end-7: a subject that is not (yet) there MUST be accepted; OCI-Subject says it was seen
      const refConfig = plainConfig();
      await pushBlob(a.url, r, refConfig);
      const referrer = imageManifest({ config: refConfig, layers: [content], subject: { mediaType: MediaType.manifest, digest: unknown, size: 123 } });
      const refPut = await putManifest(a.url, r, referrer.digest, referrer);
      expect({ status: refPut.status, subject: refPut.headers.get('oci-subject'), location: refPut.headers.get('location') }).toEqual({
        status: 201,
        subject: unknown,
        location: `/v2/${r}/manifests/${referrer.digest}`,
      });
      expect(((await req(a.url, 'GET', `/v2/${r}/referrers/${unknown}`)).json() as { manifests: Array<{ digest: string }> }).manifests.map((x) => x.digest)).toEqual([referrer.digest]);
      // end-3 success: Docker-Content-Digest and Content-Length, by tag and by digest, GET and HEAD
      for (const method of ['GET', 'HEAD']) {
        const res = await req(a.url, method, `/v2/${r}/manifests/there`);
        expect({ status: res.status, digest: res.headers.get('docker-content-digest'), length: res.headers.get('content-length') }).toEqual({ status: 200, digest: m.digest, length: String(m.size) });
      }
    });

    it('tags list: n and last as the spec has them; a malformed n is 400', async () => {
      const r = repo('tags-n');
      const m = await pushImage(a.url, r, 'a', { config: plainConfig(), layers: [randomBlob(10)] });
      for (const t of ['B', 'c', 'd']) expect((await putManifest(a.url, r, t, m)).status).toBe(201);
      const list = async (q: string) => {
        const res = await req(b.url, 'GET', `/v2/${r}/tags/list${q}`);
        expect(res.status, q).toBe(200);
        return { tags: (res.json() as { tags: string[] }).tags, link: res.headers.get('link') };
      };
      // ASCIIbetical (Go's sort.Strings), which the spec allows; last compares the same way
      expect(await list('')).toEqual({ tags: ['B', 'a', 'c', 'd'], link: null });
      expect(await list('?n=0')).toEqual({ tags: [], link: null });
      expect(await list('?n=4')).toEqual({ tags: ['B', 'a', 'c', 'd'], link: null }); // exactly all: no next page
      expect(await list('?n=100')).toEqual({ tags: ['B', 'a', 'c', 'd'], link: null });
      expect(await list('?n=3')).toEqual({ tags: ['B', 'a', 'c'], link: `</v2/${r}/tags/list?n=3&last=c>; rel="next"` });
      expect(await list('?n=1&last=B')).toEqual({ tags: ['a'], link: `</v2/${r}/tags/list?n=1&last=a>; rel="next"` });
      expect(await list('?last=a')).toEqual({ tags: ['c', 'd'], link: null });
      expect(await list('?last=bb')).toEqual({ tags: ['c', 'd'], link: null }); // a tag that is not there
      expect(await list('?last=d')).toEqual({ tags: [], link: null });
      expect(await list('?n=2&last=zzz')).toEqual({ tags: [], link: null });
      for (const n of ['', 'abc', '-1', '1.5', '1e1', '0x2', '+1', ' 1']) {
        expectOciError(await req(a.url, 'GET', `/v2/${r}/tags/list?n=${encodeURIComponent(n)}`), 400, 'UNSUPPORTED');
        expectOciError(await req(a.url, 'GET', `/v2/_catalog?n=${encodeURIComponent(n)}`), 400, 'UNSUPPORTED');
      }
    });

    // ---- 4. two registry instances on one storage ------------------------------------------------

    it('two instances: push through one and pull through the other; a chunked upload started on one finishes on the other', async () => {
      const r = repo('two');
      const config = plainConfig();
      const layer = randomBlob(50_000);
      const m = await pushImage(a.url, r, 'v', { config, layers: [layer] });
      const got = await req(b.url, 'GET', `/v2/${r}/manifests/v`);
      expect(got.headers.get('docker-content-digest')).toBe(m.digest);
      expect((await req(b.url, 'GET', `/v2/${r}/blobs/${layer.digest}`)).body.equals(layer.bytes)).toBe(true);
      expect((await req(b.url, 'GET', `/v2/${r}/tags/list`)).json()).toEqual({ name: r, tags: ['v'] });

      const big = randomBlob(30_000);
      const loc = await startUpload(a.url, r);
      const path = new URL(loc).pathname;
      expect((await req(a.url, 'PATCH', path, { headers: { ...OCTET, 'content-range': '0-9999' }, body: big.bytes.subarray(0, 10_000) })).status).toBe(202);
      const st = await req(b.url, 'GET', path);
      expect(st.status).toBe(204);
      expect(st.headers.get('range')).toBe('0-9999');
      expect((await req(b.url, 'PATCH', path, { headers: { ...OCTET, 'content-range': '10000-19999' }, body: big.bytes.subarray(10_000, 20_000) })).status).toBe(202);
      expectRangeInvalid(await req(a.url, 'PATCH', path, { headers: { ...OCTET, 'content-range': '10000-19999' }, body: big.bytes.subarray(10_000, 20_000) }));
      const fin = await req(b.url, 'PUT', `${path}?digest=${big.digest}`, { headers: { ...OCTET, 'content-range': '20000-29999' }, body: big.bytes.subarray(20_000) });
      expect(fin.status).toBe(201);
      expect(digestOf((await req(a.url, 'GET', `/v2/${r}/blobs/${big.digest}`)).body)).toBe(big.digest);
      expectOciError(await req(a.url, 'GET', path), 404, 'BLOB_UPLOAD_UNKNOWN');
    });

    it('two instances: 4 concurrent pushes of manifests sharing layers all succeed and are pullable; versions converge', async () => {
      const shared = [randomBlob(200_000), randomBlob(100_000)];
      const jobs = Array.from({ length: 4 }, (_, i) => ({
        via: i % 2 ? b : a,
        repo: repo(`concurrent-${i % 2}`),
        version: `1.${i}.0`,
        config: plainConfig(`c${i}`),
        layers: [...shared, randomBlob(10_000 + i)],
      }));
      const results = await Promise.all(
        jobs.map(async (j) => {
          // each push uploads every blob itself (no HEAD first), so the shared ones race
          await Promise.all([j.config, ...j.layers].map((x) => pushBlob(j.via.url, j.repo, x)));
          const m = imageManifest({ config: j.config, layers: j.layers });
          const res = await putManifest(j.via.url, j.repo, j.version, m);
          return { j, m, res };
        }),
      );
      for (const { j, m, res } of results) {
        expect(res.status, `${j.repo}:${j.version}`).toBe(201);
        for (const via of [a, b]) {
          const got = await req(via.url, 'GET', `/v2/${j.repo}/manifests/${j.version}`);
          expect(got.status).toBe(200);
          expect(got.body.equals(m.bytes)).toBe(true);
          for (const l of [j.config, ...j.layers]) expect(digestOf((await req(via.url, 'GET', `/v2/${j.repo}/blobs/${l.digest}`)).body)).toBe(l.digest);
        }
      }
      // the same versions pushed to one repository from both instances at once: latest ends on the highest
      const r = repo('concurrent-versions');
      const layer = randomBlob(1000);
      const configs = ['2.0.0', '2.1.0', '2.2.0', '2.3.0'].map((v) => ({ v, config: plainConfig(v) }));
      for (const { config } of configs) await pushBlob(a.url, r, config);
      await pushBlob(a.url, r, layer);
      const manifests = configs.map(({ v, config }) => ({ v, m: imageManifest({ config, layers: [layer] }) }));
      const puts = await Promise.all(manifests.map(({ v, m }, i) => putManifest((i % 2 ? b : a).url, r, v, m)));
      expect(puts.map((p) => p.status)).toEqual([201, 201, 201, 201]);
      const latest = (await req(a.url, 'HEAD', `/v2/${r}/manifests/latest`)).headers.get('docker-content-digest');
      expect(latest).toBe(manifests[3]!.m.digest);
      expect((await req(a.url, 'HEAD', `/v2/${r}/manifests/2`)).headers.get('docker-content-digest')).toBe(manifests[3]!.m.digest);
      expect((await req(a.url, 'HEAD', `/v2/${r}/manifests/2.1`)).headers.get('docker-content-digest')).toBe(manifests[1]!.m.digest);
    });

    it('a slow instance publishing a lower version never leaves the aliases on it', async () => {
      const r = repo('alias-race');
      // instance c writes its first alias late: it decided on the aliases before 2.1.0 existed
      const slow = delayingDriver(storage.driver(), (p) => p.includes(`/${r}/_manifests/tags/latest/`), 1500);
      const c = await startRegistry(slow);
      try {
        const layer = randomBlob(100);
        const [c1, c2] = [plainConfig('2.0.0'), plainConfig('2.1.0')];
        for (const x of [c1, c2, layer]) await pushBlob(a.url, r, x);
        const m1 = imageManifest({ config: c1, layers: [layer] });
        const m2 = imageManifest({ config: c2, layers: [layer] });
        const first = putManifest(c.url, r, '2.0.0', m1);
        await slow.held; // c has published 2.0.0 and is about to point latest at it
        const second = await putManifest(b.url, r, '2.1.0', m2);
        expect(second.status).toBe(201);
        expect((await first).status).toBe(201);
        const digestOfTag = async (t: string) => (await req(a.url, 'HEAD', `/v2/${r}/manifests/${t}`)).headers.get('docker-content-digest');
        expect({ latest: await digestOfTag('latest'), major: await digestOfTag('2'), '2.0': await digestOfTag('2.0'), '2.1': await digestOfTag('2.1') }).toEqual({
          latest: m2.digest,
          major: m2.digest,
          '2.0': m1.digest,
          '2.1': m2.digest,
        });
      } finally {
        await c.close();
      }
    });

    it('two versions of one template published at once: the summary names the highest', async () => {
      const distro = `race${rand(3)}`;
      // free-running: from both instances at once
      const free = repo(`${distro}-free`);
      await Promise.all(['1.0.0', '1.1.0', '1.2.0', '1.3.0'].map((v, i) => publishTemplate(i % 2 ? b : a, free, v, distro)));
      expect(await storedSummary(free)).toMatchObject({ versions: ['1.0.0', '1.1.0', '1.2.0', '1.3.0'], latest: { version: '1.3.0' } });

      // forced: instance c computes its summary before 2.1.0 exists and writes it after b's
      const r = repo(`${distro}-held`);
      const slow = delayingDriver(storage.driver(), (p) => p === catalogPaths.summary(r), 1500);
      const c = await startRegistry(slow);
      try {
        const first = publishTemplate(c, r, '2.0.0', distro);
        await slow.held; // c has listed {2.0.0} and is about to write its summary
        const second = await publishTemplate(b, r, '2.1.0', distro);
        await first;
        expect(await storedSummary(r)).toMatchObject({ versions: ['2.0.0', '2.1.0'], latest: { version: '2.1.0', digest: second.digest } });
        const found = await searchFor(a, `distro=${distro}`);
        expect(found.get(r)).toMatchObject({ latest: '2.1.0', versions: 2 });
        expect(found.get(free)).toMatchObject({ latest: '1.3.0', versions: 4 });
      } finally {
        await c.close();
      }
    });

    // ---- 5. real clients ------------------------------------------------------------------------

    describe('real clients', () => {
      let work: string;
      let layoutDir: string;
      let small: Awaited<ReturnType<typeof makeSmallLayout>>;
      beforeAll(async () => {
        work = await mkdtemp(join(tmpdir(), 'vztpl-clients-'));
        layoutDir = join(work, 'layout');
        small = await makeSmallLayout(layoutDir, '1.0.0', { name: 'debian-12-x86_64', version: '1.0.0', distro: 'debian', release: '12', arch: 'x86_64', packages: [{ name: 'bash', version: '5.2', arch: 'amd64' }] });
      });
      afterAll(async () => {
        if (work) await rm(work, { recursive: true, force: true });
      });

      it('skopeo copies the layout in and back out to oci: and dir: with the same digests', async () => {
        const r = repo('skopeo/debian-12-x86_64');
        const dest = `127.0.0.1:${a.port}/${r}:1.0.0`;
        await execOk('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layoutDir}:1.0.0`, `docker://${dest}`]);
        const head = await req(b.url, 'HEAD', `/v2/${r}/manifests/1.0.0`);
        expect(head.status).toBe(200);
        expect(head.headers.get('docker-content-digest')).toBe(small.manifest.digest);
        // a version: the aliases moved and the catalog knows it
        expect((await req(b.url, 'HEAD', `/v2/${r}/manifests/latest`)).headers.get('docker-content-digest')).toBe(small.manifest.digest);
        expect((await req(b.url, 'GET', `/api/v1/templates/${r}/resolve?range=^1`)).json()).toMatchObject({ version: '1.0.0', digest: small.manifest.digest });

        // back out through the other instance
        const src = `docker://127.0.0.1:${b.port}/${r}:1.0.0`;
        const ociOut = join(work, 'oci-out');
        const dirOut = join(work, 'dir-out');
        await execOk('skopeo', ['copy', '--quiet', '--src-tls-verify=false', src, `oci:${ociOut}:copy`]);
        await execOk('skopeo', ['copy', '--quiet', '--src-tls-verify=false', src, `dir:${dirOut}`]);
        const index = JSON.parse(await readFile(join(ociOut, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; size: number }> };
        expect(index.manifests.map((x) => x.digest)).toEqual([small.manifest.digest]);
        for (const x of [small.manifest, small.config, ...small.layers]) {
          const bytes = await readFile(join(ociOut, 'blobs', 'sha256', x.digest.slice(7)));
          expect(digestOf(bytes)).toBe(x.digest);
        }
        const dirManifest = await readFile(join(dirOut, 'manifest.json'));
        expect(digestOf(dirManifest)).toBe(small.manifest.digest);
        for (const x of [small.config, ...small.layers]) expect(digestOf(await readFile(join(dirOut, x.digest.slice(7))))).toBe(x.digest);
        const inspect = JSON.parse((await execOk('skopeo', ['inspect', '--tls-verify=false', src])).stdout) as { Digest: string; Layers: string[]; Labels: Record<string, string> };
        expect(inspect.Digest).toBe(small.manifest.digest);
        expect(inspect.Layers).toEqual(small.layers.map((l) => l.digest));
        expect(inspect.Labels['org.openvz.template.distro']).toBe('debian');
        // a tag list through skopeo
        const tags = JSON.parse((await execOk('skopeo', ['list-tags', '--tls-verify=false', `docker://127.0.0.1:${a.port}/${r}`])).stdout) as { Tags: string[] };
        expect(tags.Tags.sort()).toEqual(['1', '1.0', '1.0.0', 'latest']);
      });

      it('vztpl push sends what is missing, and a second push sends nothing', async () => {
        const r = repo('pushed/debian-12-x86_64');
        const target = `127.0.0.1:${b.port}/${r}:1.0.0`;
        const first = await runCli(['push', `${layoutDir}:1.0.0`, target, '--json']);
        expect(first.code, first.stderr).toBe(0);
        const ev1 = parseJsonLines(first.stdout);
        expect(ev1.filter((e) => e.event === 'blob-pushed').map((e) => e.digest).sort()).toEqual([small.config, ...small.layers].map((x) => x.digest).sort());
        expect(ev1.filter((e) => e.event === 'blob-exists')).toEqual([]);
        expect(ev1.at(-1)).toMatchObject({ event: 'pushed', repository: r, version: '1.0.0', digest: small.manifest.digest, skipped: 0 });

        const second = await runCli(['push', layoutDir, target, '--json']);
        expect(second.code, second.stderr).toBe(0);
        const ev2 = parseJsonLines(second.stdout);
        expect(ev2.filter((e) => e.event === 'blob-pushed')).toEqual([]);
        expect(ev2.filter((e) => e.event === 'blob-exists').map((e) => e.digest).sort()).toEqual([small.config, ...small.layers].map((x) => x.digest).sort());
        expect(ev2.at(-1)).toMatchObject({ event: 'pushed', digest: small.manifest.digest, sent: 0, skipped: 3 });
        expect((await req(a.url, 'GET', `/v2/${r}/manifests/1.0.0`)).body.equals(small.manifest.bytes)).toBe(true);

        // a different template under the same version is refused, and the CLI says so
        const otherLayout = join(work, 'other-layout');
        await makeSmallLayout(otherLayout, '1.0.0', { name: 'debian-12-x86_64', version: '1.0.0', distro: 'debian', release: '12', arch: 'x86_64' });
        const clash = await runCli(['push', otherLayout, target, '--json']);
        expect(clash.code).toBe(1);
        expect(clash.stderr).toMatch(/HTTP 409 DENIED: .*published version/);
        expect((await req(a.url, 'HEAD', `/v2/${r}/manifests/1.0.0`)).headers.get('docker-content-digest')).toBe(small.manifest.digest);
      });

      it('podman pulls, pushes under another name, and removes (private storage root)', async () => {
        const r = repo('podman/debian-12-x86_64');
        await execOk('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layoutDir}:1.0.0`, `docker://127.0.0.1:${a.port}/${r}:1.0.0`]);
        const root = join(work, 'podman');
        const podman = (...args: string[]) =>
          run('podman', ['--root', join(root, 'storage'), '--runroot', join(root, 'run'), '--tmpdir', join(root, 'tmp'), '--storage-driver', 'vfs', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs', ...args], {
            timeoutMs: 180_000,
            env: { ...process.env, CONTAINERS_REGISTRIES_CONF: join(root, 'registries.conf'), XDG_RUNTIME_DIR: join(root, 'xdg') },
          });
        const { mkdir, writeFile } = await import('node:fs/promises');
        await mkdir(join(root, 'xdg'), { recursive: true });
        await writeFile(join(root, 'registries.conf'), 'unqualified-search-registries = []\n');
        try {
          const image = `127.0.0.1:${a.port}/${r}:1.0.0`;
          const pull = await podman('pull', '--quiet', '--tls-verify=false', image);
          expect(pull.code, pull.stderr).toBe(0);
          const imageId = pull.stdout.trim();
          expect(imageId).toBe(small.config.digest.slice(7)); // podman's image id is the config digest
          const inspect = await podman('image', 'inspect', image);
          expect(inspect.code, inspect.stderr).toBe(0);
          const info = JSON.parse(inspect.stdout) as Array<{ Digest: string; RootFS: { Layers: string[] }; Labels: Record<string, string> }>;
          expect(info[0]!.Digest).toBe(small.manifest.digest);
          expect(info[0]!.RootFS.Layers).toEqual(small.diffIds);
          expect(info[0]!.Labels['org.openvz.template.release']).toBe('12');

          const other = `127.0.0.1:${b.port}/${repo('podman/pushed')}:2.0.0`;
          const push = await podman('push', '--quiet', '--tls-verify=false', image, other);
          expect(push.code, push.stderr).toBe(0);
          const pushed = await req(a.url, 'GET', `/v2/${repo('podman/pushed')}/manifests/2.0.0`);
          expect(pushed.status).toBe(200);
          const pm = pushed.json() as { config: { digest: string }; layers: Array<{ digest: string; size: number }> };
          expect(pm.config.digest).toBe(small.config.digest);
          for (const l of pm.layers) {
            const got = await req(b.url, 'GET', `/v2/${repo('podman/pushed')}/blobs/${l.digest}`);
            expect(got.status).toBe(200);
            expect(got.body.length).toBe(l.size);
            expect(digestOf(got.body)).toBe(l.digest);
          }
          // and podman pulls back what it pushed
          expect((await podman('pull', '--quiet', '--tls-verify=false', other)).code).toBe(0);
          const rmi = await podman('rmi', '--force', image, other);
          expect(rmi.code, rmi.stderr).toBe(0);
          const left = await podman('images', '--quiet');
          expect(left.stdout.trim()).toBe('');
        } finally {
          await podman('rmi', '--all', '--force');
          await rm(root, { recursive: true, force: true });
        }
        expect(await readdir(work)).not.toContain('podman');
      });
    });
  });
}

