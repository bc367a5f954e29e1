// `vztpl serve` as a process (node cli/main.ts serve): where its settings come from (a --config
// YAML, VZTPL_* variables, flags, defaults for the rest), bad settings (exit 2 naming the
// setting and its source, nothing listening), and graceful shutdown: SIGTERM while a large blob
// streams in lets that upload finish, refuses new connections, and exits 0.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FsDriver } from '../../registry/storage/fs.ts';
import {
  cliEnv,
  freePort,
  parseJsonLines,
  pushBlob,
  randomBlob,
  req,
  runCli,
  spawnCli,
  startRegistry,
  waitHealthy,
  type Spawned,
} from '../helpers/registry-env.ts';

const MiB = 1024 * 1024;

describe('vztpl serve as a process', () => {
  let work: string;
  const running: Spawned[] = [];
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'vztpl-serve-'));
  });
  afterEach(async () => {
    // every server a test started is gone when it ends, whatever happened
    for (const p of running.splice(0)) await p.kill();
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  function serve(args: string[], env: NodeJS.ProcessEnv = cliEnv()): Spawned {
    const p = spawnCli(['serve', ...args], env);
    running.push(p);
    return p;
  }

  async function stopGracefully(p: Spawned): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    p.child.kill('SIGTERM');
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000).unref());
    const result = await Promise.race([p.exited, timeout]);
    expect(result, `serve did not exit after SIGTERM:\n${p.stderr()}`).not.toBe('timeout');
    return result as { code: number | null; signal: NodeJS.Signals | null };
  }

  const answers = async (port: number) =>
    fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) }).then(
      async (r) => (await r.arrayBuffer(), r.status === 200),
      () => false,
    );

  const blobIn = (dir: string, digest: string) => existsSync(join(dir, 'v2', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7), 'data'));

  it('takes its settings from a --config YAML, then VZTPL_* variables, then flags; defaults fill the rest', async () => {
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    const [d1, d2, d3] = [join(work, 'store-file'), join(work, 'store-env'), join(work, 'store-flag')];
    const file = join(work, 'registry.yaml');
    // only listen and storage: logLevel (info), shutdownTimeout, s3 keep their defaults
    await writeFile(file, `# vztpl registry\nlisten: "127.0.0.1:${p1}"\nstorage: "fs:${d1}"\n`);
    const content = randomBlob(1234);

    // 1. the file alone
    const one = serve(['--config', file]);
    await waitHealthy(`http://127.0.0.1:${p1}/healthz`, one);
    const health = await req(`http://127.0.0.1:${p1}`, 'GET', '/healthz');
    expect(health.json()).toEqual({ status: 'ok', storage: 'filesystem' });
    await pushBlob(`http://127.0.0.1:${p1}`, 'settings/file', content);
    expect(blobIn(d1, content.digest)).toBe(true);
    expect(await stopGracefully(one)).toEqual({ code: 0, signal: null });
    // default log level info: JSON lines on stdout, the listening message among them
    const logs = parseJsonLines(one.stdout());
    expect(logs.some((l) => l.level === 30 && /Server listening at http:\/\/127\.0\.0\.1:\d+/.test(l.msg))).toBe(true);
    expect(logs.some((l) => /shutting down/.test(l.msg) && l.signal === 'SIGTERM')).toBe(true);

    // 2. variables over the file
    const envVars = cliEnv({ VZTPL_LISTEN: `127.0.0.1:${p2}`, VZTPL_STORAGE: `fs:${d2}`, VZTPL_LOG_LEVEL: 'warn' });
    const two = serve(['--config', file], envVars);
    await waitHealthy(`http://127.0.0.1:${p2}/healthz`, two);
    expect(await answers(p1)).toBe(false);
    await pushBlob(`http://127.0.0.1:${p2}`, 'settings/env', content);
    expect(blobIn(d2, content.digest)).toBe(true);
    expect(await stopGracefully(two)).toEqual({ code: 0, signal: null });
    expect(parseJsonLines(two.stdout()).filter((l) => l.level < 40)).toEqual([]); // warn: no info lines

    // 3. flags over variables over the file
    const three = serve(['--config', file, '--listen', `127.0.0.1:${p3}`, '--storage', `fs:${d3}`], envVars);
    await waitHealthy(`http://127.0.0.1:${p3}/healthz`, three);
    expect(await answers(p1)).toBe(false);
    expect(await answers(p2)).toBe(false);
    await pushBlob(`http://127.0.0.1:${p3}`, 'settings/flag', content);
    expect(blobIn(d3, content.digest)).toBe(true);
    expect(await stopGracefully(three)).toEqual({ code: 0, signal: null });

    // --help documents the sources
    const help = await runCli(['serve', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/VZTPL_LISTEN/);
  });

  it('a bad setting stops start-up with exit code 2, naming the setting and where it came from', async () => {
    const port = await freePort();
    const store = `fs:${join(work, 'never')}`;
    const cfg = async (name: string, text: string) => {
      const f = join(work, name);
      await writeFile(f, text);
      return f;
    };
    const cases: Array<{ what: string; args?: string[]; env?: Record<string, string>; message: RegExp }> = [
      { what: 'VZTPL_LISTEN=nonsense', env: { VZTPL_LISTEN: 'nonsense' }, message: /listen \(from environment variable VZTPL_LISTEN\): must be HOST:PORT/ },
      { what: '--storage ftp://x', args: ['--storage', 'ftp://x'], message: /storage \(from option --storage\): must be fs:DIR or s3:\/\/BUCKET\[\/PREFIX\]/ },
      { what: 'VZTPL_STORAGE=ftp://x', env: { VZTPL_STORAGE: 'ftp://x' }, message: /storage \(from environment variable VZTPL_STORAGE\): must be fs:DIR/ },
      { what: 'storage in the config file', args: ['--config', await cfg('bad-storage.yaml', `listen: 127.0.0.1:${port}\nstorage: ftp://x\n`)], message: /storage \(from config file .*bad-storage\.yaml\): must be fs:DIR/ },
      { what: 'a port past 65535', args: ['--listen', '127.0.0.1:70000'], message: /listen \(from option --listen\): port must be at most 65535/ },
      { what: 'an unknown key in the file', args: ['--config', await cfg('unknown.yaml', `listen: 127.0.0.1:${port}\ncolour: blue\n`)], message: /colour/ },
      { what: 'a file that is not a mapping', args: ['--config', await cfg('list.yaml', '- a\n- b\n')], message: /must be a mapping of settings/ },
      { what: 'YAML that does not parse', args: ['--config', await cfg('broken.yaml', 'listen: [unclosed\n')], message: /config file .*broken\.yaml/ },
      { what: 'a missing config file', args: ['--config', join(work, 'absent.yaml')], message: /config file .*absent\.yaml: .*ENOENT/ },
      { what: 'VZTPL_S3_PATH_STYLE=maybe', env: { VZTPL_S3_PATH_STYLE: 'maybe' }, message: /VZTPL_S3_PATH_STYLE=maybe: must be true or false/ },
      { what: 'VZTPL_SHUTDOWN_TIMEOUT=soon', env: { VZTPL_SHUTDOWN_TIMEOUT: 'soon' }, message: /VZTPL_SHUTDOWN_TIMEOUT=soon: must be a whole number/ },
      { what: 'VZTPL_LOG_LEVEL=loud', env: { VZTPL_LOG_LEVEL: 'loud' }, message: /logLevel \(from environment variable VZTPL_LOG_LEVEL\)/ },
      { what: 'an s3 endpoint that is not a URL', args: ['--s3-endpoint', 'not a url'], message: /s3\.endpoint \(from option --s3-endpoint\)/ },
      { what: 'an unknown option', args: ['--bogus'], message: /serve: .*bogus/ },
    ];
    for (const c of cases) {
      const args = ['serve', ...(c.args ?? [])];
      // a sure listen and storage, except where the case is about them (a flag would win over the file)
      const fromFile = args.includes('--config');
      if (!fromFile && !args.includes('--listen') && !c.env?.VZTPL_LISTEN) args.push('--listen', `127.0.0.1:${port}`);
      if (!fromFile && !args.includes('--storage') && !c.env?.VZTPL_STORAGE) args.push('--storage', store);
      const r = await runCli(args, { env: cliEnv(c.env), timeoutMs: 60_000 });
      expect({ what: c.what, code: r.code }).toEqual({ what: c.what, code: 2 });
      expect(r.stderr, c.what).toMatch(c.message);
      expect(r.stderr, c.what).not.toMatch(/internal error|at .*\.ts:\d+/);
    }
    expect(await answers(port)).toBe(false);
    expect(existsSync(join(work, 'never'))).toBe(false);
  });

  it('SIGTERM during a large blob upload: the upload finishes, new connections are refused, exit 0', async () => {
    const port = await freePort();
    const dir = join(work, 'store-graceful');
    const base = `http://127.0.0.1:${port}`;
    const p = serve(['--listen', `127.0.0.1:${port}`, '--storage', `fs:${dir}`]);
    await waitHealthy(`${base}/healthz`, p);

    const size = 96 * MiB;
    const chunk = randomBytes(MiB);
    const hash = createHash('sha256');
    for (let i = 0; i < size / MiB; i++) hash.update(chunk);
    const digest = `sha256:${hash.digest('hex')}`;
    const start = await req(base, 'POST', '/v2/graceful/big/blobs/uploads/');
    expect(start.status).toBe(202);
    const loc = new URL(start.headers.get('location')!, base);
    loc.searchParams.set('digest', digest);

    let sent = 0;
    let signalled!: () => void;
    const afterSignal = new Promise<void>((r) => (signalled = r));
    let reachedGate!: () => void;
    const atGate = new Promise<void>((r) => (reachedGate = r));
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (sent >= size) return c.close();
        if (sent === 16 * MiB) {
          reachedGate();
          await afterSignal;
        }
        if (sent > 16 * MiB) await new Promise((r) => setTimeout(r, 5)); // keep it in flight a while
        c.enqueue(chunk);
        sent += MiB;
      },
    });
    const upload = req(base, 'PUT', loc.toString(), { headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) }, body });

    await atGate;
    const t0 = Date.now();
    p.child.kill('SIGTERM');
    // the server stops accepting: wait until a new connection is refused
    let refused = false;
    for (let i = 0; i < 50 && !refused; i++) {
      refused = await fetch(`${base}/healthz`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(1000) }).then(
        async (r) => (await r.arrayBuffer(), r.status === 503),
        () => true,
      );
      if (!refused) await new Promise((r) => setTimeout(r, 50));
    }
    expect(refused).toBe(true);
    expect(p.child.exitCode).toBeNull(); // still finishing the upload
    signalled();

    const res = await upload;
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('docker-content-digest')).toBe(digest);
    expect(sent).toBe(size);
    const exit = await Promise.race([p.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000).unref())]);
    expect(exit, p.stderr()).toEqual({ code: 0, signal: null });
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeLessThan(15_000);
    expect(parseJsonLines(p.stdout()).some((l) => /shutting down/.test(l.msg))).toBe(true);
    console.log(`graceful shutdown: the ${size / MiB} MiB upload finished and the process exited 0, ${elapsed} ms after SIGTERM`);

    // what was uploaded is all there: another registry on the same directory serves it
    expect((await stat(join(dir, 'v2', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7), 'data'))).size).toBe(size);
    const again = await startRegistry(new FsDriver({ root: dir }));
    try {
      const head = await req(again.url, 'HEAD', `/v2/graceful/big/blobs/${digest}`);
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(size));
    } finally {
      await again.close();
    }
  });
});
