// A real S3 server for the tests: a throwaway single-node Ceph cluster (one mon, one OSD on
// memstore, no mgr, auth none) with radosgw in front, everything under one temp directory that
// stop() removes. Follows /work/shared/notes/ceph-rgw.md: ports outside the OSD range
// 6800-7300, `ms mon client mode = crc` for radosgw, a short paxos propose interval so RGW's
// pool creations are quick, and daemons tracked by pid (alive = not a zombie and its cmdline is
// the expected binary).
//
// memstore keeps the objects in the OSD's memory: the cluster starts in a couple of seconds and
// nothing touches the disk; pass `objectStore: 'bluestore'` for a sparse-file bluestore that
// survives a kill -9 of the OSD (slower to start). A detached watchdog shell kills the daemons
// and removes the directory if the process that started them dies without calling stop().
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { S3Client, ListBucketsCommand } from '@aws-sdk/client-s3';

export const CEPH_BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'ceph-authtool', 'monmaptool'];
const SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute path of a program on the usual PATH, or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SEARCH_PATH];
  for (const d of dirs) if (existsSync(join(d, name))) return join(d, name);
  return undefined;
}

/** The Ceph programs startRgw needs that are not installed (empty when it can run). */
export function missingCephBinaries(): string[] {
  return CEPH_BINARIES.filter((b) => !findBinary(b));
}

export interface RgwOptions {
  /** Directory for the whole cluster (created; must be empty; removed by stop()). Default: a new temp dir. */
  dir?: string;
  /** radosgw's port on 127.0.0.1. Default: a free one. */
  port?: number;
  /** Default memstore (fast start, data in RAM). */
  objectStore?: 'memstore' | 'bluestore';
}

export interface RgwHandle {
  /** http://127.0.0.1:PORT, path-style S3. */
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly region: 'us-east-1';
  readonly dir: string;
  readonly port: number;
  /** Milliseconds from startRgw() to the first signed request that answered 200. */
  readonly startMs: number;
  /** Current daemon pids (rgw is undefined while the gateway is stopped). */
  readonly pids: { mon: number; osd: number; rgw: number | undefined };
  /** Stops radosgw only (SIGKILL by default, as a crash; graceful: SIGTERM first). Objects stay. */
  stopGateway(opts?: { graceful?: boolean }): Promise<void>;
  /** Starts radosgw again on the same port and waits until it answers. */
  startGateway(): Promise<void>;
  /** Stops every daemon and removes the directory. Safe to call twice. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 90_000;

/** Is pid a live (non-zombie) process whose argv[0] is `binary`? */
export function pidAlive(pid: number | undefined, binary: string): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    if (state === 'Z' || state === 'X' || state === 'x') return false;
    const argv0 = readFileSync(`/proc/${pid}/cmdline`).toString('utf8').split('\0')[0] ?? '';
    return basename(argv0) === binary;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port && (port < 6800 || port > 7300)) return port;
  }
  throw new Error('rgw: no free port outside 6800-7300');
}

function run(bin: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: timeoutMs, maxBuffer: 16 << 20, env: cephEnv() }, (err, stdout, stderr) => {
      if (err) reject(new Error(`rgw: ${basename(bin)} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

function cephEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.CEPH_CONF;
  delete env.CEPH_ARGS;
  return env;
}

/** Asks a daemon's admin socket (length-prefixed JSON answer to a NUL-terminated command). */
function adminSocket(path: string, prefix: string, timeoutMs = 2000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => sock.destroy(new Error('admin socket timeout')), timeoutMs);
    sock.once('connect', () => sock.write(`${JSON.stringify({ prefix })}\0`));
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.once('close', () => {
      clearTimeout(timer);
      const buf = Buffer.concat(chunks);
      if (buf.length < 4) return reject(new Error('admin socket: short answer'));
      const len = buf.readUInt32BE(0);
      try {
        resolve(JSON.parse(buf.subarray(4, 4 + len).toString('utf8')));
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

const WATCHDOG = `
parent=$1; dir=$2
while [ -d "$dir" ] && kill -0 "$parent" 2>/dev/null; do sleep 2; done
[ -d "$dir/pids" ] || exit 0
for f in "$dir"/pids/*; do
  [ -f "$f" ] || continue
  pid=$(cat "$f"); bin=$(basename "$f")
  argv0=$(tr '\\0' '\\n' < /proc/$pid/cmdline 2>/dev/null | head -n 1)
  [ "$(basename "$argv0" 2>/dev/null)" = "$bin" ] && kill -9 "$pid" 2>/dev/null
done
sleep 0.5
rm -rf "$dir"
`;

export async function startRgw(opts: RgwOptions = {}): Promise<RgwHandle> {
  const t0 = Date.now();
  const missing = missingCephBinaries();
  if (missing.length) throw new Error(`rgw: Ceph programs not installed: ${missing.join(', ')}`);
  const bin = (n: string) => findBinary(n) as string;

  let dir: string;
  if (opts.dir) {
    dir = opts.dir;
    await mkdir(dir, { recursive: true });
    // stop() removes the directory: refuse one that holds anything already.
    if ((await readdir(dir)).length) throw new Error(`rgw: ${dir} is not empty`);
  } else {
    dir = await mkdtemp(join(tmpdir(), 'vztpl-rgw-'));
  }
  const objectStore = opts.objectStore ?? 'memstore';
  const monPort = await freePort();
  const port = opts.port ?? (await freePort());
  const fsid = randomUUID();
  const osdUuid = randomUUID();
  const accessKeyId = `VZTPL${randomBytes(8).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(24).toString('base64url');
  const conf = join(dir, 'ceph.conf');
  const rgwName = 'client.rgw.vztpl';
  const endpoint = `http://127.0.0.1:${port}`;

  const procs = new Map<string, ChildProcess>();
  const pids: { mon: number; osd: number; rgw: number | undefined } = { mon: 0, osd: 0, rgw: undefined };
  let stopped = false;

  for (const sub of ['mon', 'osd', 'rgw', 'run', 'log', 'pids']) await mkdir(join(dir, sub), { recursive: true });
  await writeFile(
    conf,
    `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
paxos propose interval = 0.05
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
log to stderr = false
err to stderr = false
mon cluster log file = ${dir}/log/cluster.log
mon data = ${dir}/mon/$cluster-$id
keyring = ${dir}/keyring
osd objectstore = ${objectStore}

[osd]
osd data = ${dir}/osd
memstore device bytes = 8589934592
bluestore block create = true
bluestore block size = 21474836480
bluestore fsck on mkfs = false
bluestore fsck on mount = false
osd memory target = 943718400

[client]
ms mon client mode = crc

[${rgwName}]
rgw frontends = beast endpoint=127.0.0.1:${port}
rgw data = ${dir}/rgw
rgw thread pool size = 64
rgw gc obj min wait = 60
rgw gc processor period = 60
`,
  );

  const daemon = async (key: 'mon' | 'osd' | 'rgw', binary: string, args: string[]) => {
    const child = spawn(bin(binary), ['-f', '-c', conf, ...args], {
      stdio: ['ignore', 'ignore', 'ignore'],
      env: cephEnv(),
    });
    if (!child.pid) throw new Error(`rgw: could not start ${binary}`);
    child.unref();
    child.once('error', () => {});
    procs.set(key, child);
    pids[key] = child.pid;
    await writeFile(join(dir, 'pids', binary), String(child.pid));
    return child.pid;
  };

  const kill = async (key: 'mon' | 'osd' | 'rgw', binary: string, graceful: boolean) => {
    const pid = pids[key];
    if (!pid) return;
    if (graceful && pidAlive(pid, binary)) {
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100 && pidAlive(pid, binary); i++) await sleep(50);
    }
    if (pidAlive(pid, binary)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
      for (let i = 0; i < 200 && pidAlive(pid, binary); i++) await sleep(25);
    }
    procs.delete(key);
    await rm(join(dir, 'pids', binary), { force: true });
  };

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Everything is thrown away: no need for the daemons' own (slow, memstore-dumping) shutdown.
    await kill('rgw', 'radosgw', false);
    await kill('osd', 'ceph-osd', false);
    await kill('mon', 'ceph-mon', false);
    await rm(dir, { recursive: true, force: true });
  };

  const s3 = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  const waitGateway = async () => {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let last: unknown;
    for (;;) {
      if (!pidAlive(pids.rgw, 'radosgw')) {
        throw new Error(`rgw: radosgw exited during start-up\n${tail(join(dir, 'log', `${rgwName}.log`))}`);
      }
      try {
        await s3.send(new ListBucketsCommand({}), { abortSignal: AbortSignal.timeout(2000) });
        return;
      } catch (e) {
        last = e;
      }
      if (Date.now() > deadline) throw new Error(`rgw: radosgw did not answer in time: ${String(last)}`);
      await sleep(50);
    }
  };

  const startGateway = async () => {
    if (stopped) throw new Error('rgw: cluster stopped');
    if (pidAlive(pids.rgw, 'radosgw')) return;
    await daemon('rgw', 'radosgw', ['-n', rgwName]);
    await waitGateway();
  };

  try {
    // Watchdog: cleans up if this process dies without stop().
    const wd = spawn('/bin/sh', ['-c', WATCHDOG, 'vztpl-rgw-watchdog', String(process.pid), dir], {
      detached: true,
      stdio: 'ignore',
    });
    wd.once('error', () => {});
    wd.unref();

    // 1. monitor
    await run(bin('ceph-authtool'), ['--create-keyring', join(dir, 'mon.keyring'), '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
    await run(bin('monmaptool'), ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, join(dir, 'monmap')]);
    await run(bin('ceph-mon'), ['-c', conf, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap'), '--keyring', join(dir, 'mon.keyring')]);
    await daemon('mon', 'ceph-mon', ['-i', 'a']);

    // 2. OSD
    const id = (await run(bin('ceph'), ['-c', conf, '--connect-timeout', '60', 'osd', 'new', osdUuid])).trim();
    if (id !== '0') throw new Error(`rgw: expected osd id 0, got ${JSON.stringify(id)}`);
    await run(bin('ceph-osd'), ['-c', conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
    await daemon('osd', 'ceph-osd', ['-i', '0']);
    const asok = join(dir, 'run', 'osd.0.asok');
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (!pidAlive(pids.osd, 'ceph-osd')) throw new Error(`rgw: ceph-osd exited\n${tail(join(dir, 'log', 'osd.0.log'))}`);
      const st = (await adminSocket(asok, 'status').catch(() => undefined)) as { state?: string } | undefined;
      if (st?.state === 'active') break;
      if (Date.now() > deadline) throw new Error(`rgw: OSD not active in time (state ${st?.state})\n${tail(join(dir, 'log', 'osd.0.log'))}`);
      await sleep(50);
    }

    // 3. the S3 user (creates RGW's pools), then the gateway
    await run(bin('radosgw-admin'), [
      '-c', conf, '-n', rgwName, 'user', 'create', '--uid=vztpl-test', '--display-name=vztpl test',
      `--access-key=${accessKeyId}`, `--secret-key=${secretAccessKey}`,
    ], 120_000);
    await startGateway();
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }

  return {
    endpoint,
    accessKeyId,
    secretAccessKey,
    region: 'us-east-1',
    dir,
    port,
    startMs: Date.now() - t0,
    get pids() {
      return { mon: pids.mon, osd: pids.osd, rgw: pidAlive(pids.rgw, 'radosgw') ? pids.rgw : undefined };
    },
    stopGateway: async (o?: { graceful?: boolean }) => {
      await kill('rgw', 'radosgw', o?.graceful ?? false);
      pids.rgw = undefined;
    },
    startGateway,
    stop: async () => {
      s3.destroy();
      await stop();
    },
  };
}

/** Reads a file under the cluster dir (logs, for diagnostics in failing tests). */
export async function rgwLog(handle: RgwHandle, name = 'client.rgw.vztpl'): Promise<string> {
  return readFile(join(handle.dir, 'log', `${name}.log`), 'utf8').catch(() => '');
}
