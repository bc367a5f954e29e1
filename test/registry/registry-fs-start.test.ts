// One registry process on the fs driver, at its edges: what it sweeps when it starts (temp files
// a crashed process left, without waiting for garbage collection) and what it logs when clients
// hang up in the middle of a request body (a warning, never an error or a 5xx).
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType } from '../../format/oci.ts';
import { buildServer } from '../../registry/server.ts';
import { FsDriver } from '../../registry/storage/fs.ts';
import { NODE, REPO_ROOT, imageManifest, plainConfig, randomBlob, req, run, startRegistry } from '../helpers/registry-env.ts';

const HOUR = 3600_000;

describe('registry on fs: start-up sweep and clients that hang up', () => {
  let root: string;
  const tmpDir = () => join(root, '.~tmp');
  const tempNames = async () => (await readdir(tmpDir()).catch(() => [] as string[])).sort();

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'vztpl-registry-start-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("a starting instance removes a crashed process's temp files at once, and stale ones of its own kind; nothing of a live writer or of another kind", async () => {
    // A process dies (SIGKILL) while it writes an upload chunk: its temp file stays behind.
    const script = [
      `import { FsDriver } from ${JSON.stringify(`${REPO_ROOT}/registry/storage/fs.ts`)};`,
      'const w = await new FsDriver({ root: process.env.ROOT }).writer("/v2/repositories/crashed/_uploads/x/chunk-000000");',
      'await w.write(Buffer.alloc(1 << 20, 1));',
      'process.kill(process.pid, "SIGKILL");',
    ].join('\n');
    const before = await tempNames();
    const crashed = await run(NODE, ['--input-type=module', '-e', script], { env: { ...process.env, ROOT: root }, timeoutMs: 60_000 });
    expect({ signal: crashed.signal, stderr: crashed.stderr }).toEqual({ signal: 'SIGKILL', stderr: '' });
    const crashedTemp = (await tempNames()).filter((n) => !before.includes(n));
    expect(crashedTemp).toHaveLength(1);

    // A writer of this process, still writing: fresh, its owner alive.
    const driver = new FsDriver({ root });
    const names0 = await tempNames();
    const live = await driver.writer('/v2/live/data');
    await live.write(Buffer.from('still writing'));
    const liveTemp = (await tempNames()).filter((n) => !names0.includes(n));
    expect(liveTemp).toHaveLength(1);
    // Another of this process that nobody touched for two hours: stale, though its owner lives.
    const names1 = await tempNames();
    const idle = await driver.writer('/v2/idle/data');
    await idle.write(Buffer.from('abandoned'));
    const idleTemp = (await tempNames()).filter((n) => !names1.includes(n));
    expect(idleTemp).toHaveLength(1);
    const twoHoursAgo = new Date(Date.now() - 2 * HOUR);
    await utimes(join(tmpDir(), idleTemp[0]!), twoHoursAgo, twoHoursAgo);
    // Names from before the owner tag: by age only.
    await writeFile(join(tmpDir(), '1700000000000-0123456789abcdef'), 'old kind, stale');
    await utimes(join(tmpDir(), '1700000000000-0123456789abcdef'), twoHoursAgo, twoHoursAgo);
    await writeFile(join(tmpDir(), `${Date.now()}-fedcba9876543210`), 'old kind, fresh');
    // Another machine's temp file on a shared directory: its pid means nothing here.
    await writeFile(join(tmpDir(), `0badc0de.999999999.${Date.now()}-0123456789abcdef`), 'another host');
    // Not of this driver's kind at all, however old.
    await writeFile(join(tmpDir(), 'notes.txt'), 'someone else');
    await utimes(join(tmpDir(), 'notes.txt'), twoHoursAgo, twoHoursAgo);

    const kept = [liveTemp[0]!, `0badc0de.999999999.`, '-fedcba9876543210', 'notes.txt'];
    const removed = [crashedTemp[0]!, idleTemp[0]!, '1700000000000-0123456789abcdef'];
    const registry = await startRegistry(new FsDriver({ root }));
    try {
      const after = await tempNames();
      for (const k of kept) expect(after.some((n) => n.includes(k)), `kept ${k}`).toBe(true);
      for (const r of removed) expect(after, `removed ${r}`).not.toContain(r);
      expect(after).toHaveLength(kept.length);
      // the live writer finishes as if nothing happened
      await live.commit();
      expect((await driver.getContent('/v2/live/data')).toString()).toBe('still writing');
      // the registry serves
      expect((await req(registry.url, 'GET', '/v2/')).status).toBe(200);
    } finally {
      await registry.close();
      await idle.cancel();
    }
  });

  it('a client hanging up mid-body (blob POST, PATCH, manifest PUT) is logged as a warning, never as an error; nothing is left', async () => {
    const lines: Array<{ level: number; msg: string; [k: string]: unknown }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line));
        done();
      },
    });
    const dir = await mkdtemp(join(tmpdir(), 'vztpl-registry-hangup-'));
    const driver = new FsDriver({ root: dir });
    const { app } = await buildServer({ driver, loggerInstance: pino({ level: 'info' }, sink) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    const url = `http://127.0.0.1:${port}`;
    try {
      const r = 'hangup/repo';
      const content = randomBlob(64 * 1024);
      const upload = await req(url, 'POST', `/v2/${r}/blobs/uploads/`);
      expect(upload.status).toBe(202);
      const location = upload.headers.get('location')!;
      const m = imageManifest({ config: plainConfig(), layers: [content] });
      /** Sends the head and part of the body, then hangs up. */
      const hangUp = (head: string, part: Buffer) =>
        new Promise<void>((resolve, reject) => {
          const sock = connect(port, '127.0.0.1', () => {
            sock.write(head);
            sock.write(part, () => setTimeout(() => sock.destroy(), 200));
          });
          sock.on('close', () => resolve());
          sock.on('error', reject);
        });
      const head = (method: string, path: string, type: string, length: number, extra = '') =>
        `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\n${extra}\r\n`;
      await hangUp(head('POST', `/v2/${r}/blobs/uploads/?digest=${content.digest}`, 'application/octet-stream', content.size), content.bytes.subarray(0, 1000));
      await hangUp(head('PATCH', location, 'application/octet-stream', content.size, `Content-Range: 0-${content.size - 1}\r\n`), content.bytes.subarray(0, 1000));
      await hangUp(head('PUT', `/v2/${r}/manifests/v1`, MediaType.manifest, m.size), m.bytes.subarray(0, 10));

      const hungUp = () => lines.filter((l) => l.msg === 'client hung up mid-body');
      for (let i = 0; i < 100 && hungUp().length < 3; i++) await new Promise((res) => setTimeout(res, 50));
      expect(hungUp().map((l) => [l.level, l.method])).toEqual([
        [40, 'POST'],
        [40, 'PATCH'],
        [40, 'PUT'],
      ]);
      expect(lines.filter((l) => l.level >= 50)).toEqual([]);
      expect(lines.filter((l) => typeof l.status === 'number' && (l.status as number) >= 500)).toEqual([]);
      // nothing half-written: no temp files, the session as it was, no blob, no manifest
      expect(await readdir(join(dir, '.~tmp')).catch(() => [])).toEqual([]);
      const status = await req(url, 'GET', location);
      expect({ status: status.status, range: status.headers.get('range') }).toEqual({ status: 204, range: '0-0' });
      expect((await req(url, 'HEAD', `/v2/${r}/blobs/${content.digest}`)).status).toBe(404);
      expect((await req(url, 'HEAD', `/v2/${r}/manifests/v1`)).status).toBe(404);
    } finally {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
