// Operations endpoints: /healthz, and /metrics counting requests, bytes and storage errors
// (a storage fault is injected by wrapping the real fs driver).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../format/digest.ts';
import { buildServer } from '../../registry/server.ts';
import { StorageUnavailableError, type StorageDriver } from '../../registry/storage/driver.ts';
import { FsDriver } from '../../registry/storage/fs.ts';

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.indexOf('}'));
    const have = Object.fromEntries(body.split(',').map((kv) => kv.split('=')).map(([k, v]) => [k, v?.replace(/^"|"$/g, '')]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

describe('operations endpoints', () => {
  let dir: string;
  let base: string;
  let close: () => Promise<void>;
  /** While set, getContent fails with this. */
  let failGetContent: Error | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vztpl-ops-'));
    const real = new FsDriver({ root: dir });
    // Fault injection on top of the real driver: getContent fails while the flag is set.
    const faulty: StorageDriver = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'getContent' && failGetContent) {
          const err = failGetContent;
          return async () => Promise.reject(err);
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const server = await buildServer({ driver: faulty });
    base = await server.app.listen({ host: '127.0.0.1', port: 0 });
    close = () => server.app.close();
  });
  afterAll(async () => {
    await close?.();
    await rm(dir, { recursive: true, force: true });
  });

  it('/healthz answers with the storage driver', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', storage: 'filesystem' });
  });

  it('/metrics counts requests, received bytes and storage errors', async () => {
    const before = await (await fetch(`${base}/metrics`)).text();
    const blob = Buffer.from('metrics test blob');
    const put = await fetch(`${base}/v2/ops/test/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob, headers: { 'content-type': 'application/octet-stream' } });
    expect(put.status).toBe(201);
    const missing = await fetch(`${base}/v2/ops/test/blobs/${sha256(Buffer.from('missing'))}`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('BLOB_UNKNOWN');
    failGetContent = new Error('injected storage failure');
    const broken = await fetch(`${base}/v2/ops/test/manifests/1.0.0`);
    failGetContent = undefined;
    expect(broken.status).toBe(500);
    expect(((await broken.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe("UNKNOWN");

    const after = await (await fetch(`${base}/metrics`)).text();
    expect(after).toContain('# TYPE vztpl_http_request_duration_seconds histogram');
    expect(after).toMatch(/vztpl_process_resident_memory_bytes \d+/);
    const delta = (name: string, labels: Record<string, string>) => metricValue(after, name, labels) - metricValue(before, name, labels);
    expect(delta('vztpl_http_requests_total', { method: 'POST', route: 'v2_uploads', status: '201' })).toBe(1);
    expect(delta('vztpl_http_requests_total', { method: 'GET', route: 'v2_blob', status: '404' })).toBe(1);
    expect(delta('vztpl_http_requests_total', { method: 'GET', route: 'v2_manifest', status: '500' })).toBe(1);
    expect(delta('vztpl_http_received_bytes_total', { route: 'v2_uploads' })).toBe(blob.length);
    expect(delta('vztpl_storage_errors_total', { driver: 'filesystem', op: 'getContent' })).toBe(1);
    expect(delta('vztpl_storage_operations_total', { driver: 'filesystem', op: 'getContent' })).toBeGreaterThanOrEqual(1);
  });

  it('storage that cannot be used, whatever the driver (StorageUnavailableError): 503 UNAVAILABLE with Retry-After', async () => {
    failGetContent = new StorageUnavailableError('storage unavailable: injected', { code: 'EIO' });
    const res = await fetch(`${base}/v2/ops/test/manifests/1.0.0`);
    failGetContent = undefined;
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('UNAVAILABLE');
  });
});
