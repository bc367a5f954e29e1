// TLS on the registry, end to end with a throwaway CA made by openssl here: `vztpl serve` over
// HTTPS (certificate from flags, the config file or VZTPL_TLS_*), the token realm on https,
// skopeo and podman pushing and pulling with the CA in a --cert-dir, vztpl login, push, pull and
// (as root) create with --ca-file or VZTPL_CA_FILE, clients without the CA refused with a clear
// message (exit 5, no stack), the certificate renewed without a restart (a file change alone,
// and SIGHUP), a bad renewal logged while the old certificate stays, and bad certificate files
// refused at start (exit 2 naming the files). Servers listen on 127.0.0.1 only and are killed
// by pid.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isLoopback } from '../../cli/commands/serve.ts';
import { hashPassword } from '../../registry/auth/password.ts';
import { serializeUsers } from '../../registry/auth/users.ts';
import { CLI, cliEnv, execOk, freePort, makeSmallLayout, NODE, parseJsonLines, run, spawnCli, type SmallLayout, type Spawned } from '../helpers/registry-env.ts';

const haveSkopeo = existsSync('/usr/bin/skopeo');
const havePodman = existsSync('/usr/bin/podman');
const isRoot = process.getuid?.() === 0;

interface Cert {
  crt: string;
  key: string;
  serial: string;
}

let work: string;
let ca: { crt: string; key: string };
let otherCa: { crt: string; key: string };
let certs: Record<'first' | 'renewed' | 'third' | 'fourth' | 'untrusted', Cert>;
let strayKey: string;
const running: Spawned[] = [];

const openssl = (...args: string[]) => execOk('openssl', args);

async function makeCa(name: string): Promise<{ crt: string; key: string }> {
  const crt = join(work, `${name}.crt`);
  const key = join(work, `${name}.key`);
  await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', `/CN=${name}`);
  return { crt, key };
}

/** A server certificate for 127.0.0.1 and localhost, signed by `by`, with a fixed serial. */
async function issue(name: string, by: { crt: string; key: string }, serial: string): Promise<Cert> {
  const crt = join(work, `${name}.crt`);
  const key = join(work, `${name}.key`);
  const csr = join(work, `${name}.csr`);
  const ext = join(work, `${name}.ext`);
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
  await openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=127.0.0.1');
  await openssl('x509', '-req', '-in', csr, '-CA', by.crt, '-CAkey', by.key, '-set_serial', `0x${serial}`, '-days', '2', '-extfile', ext, '-out', crt);
  return { crt, key, serial };
}

/** The serial of the certificate a new TLS connection to the port gets (verified against `caFile`). */
async function peerSerial(port: number, caFile = ca.crt): Promise<string> {
  const caPem = await readFile(caFile);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: caPem, session: undefined }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.once('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
  });
}

async function httpsGet(url: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const caPem = await readFile(ca.crt);
  return new Promise((resolve, reject) => {
    const r = httpsRequest(url, { ca: caPem, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | Error | undefined;
  for (;;) {
    try {
      last = await probe();
      if (ok(last)) return last;
    } catch (err) {
      last = err as Error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(100);
  }
}

function serve(args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const p = spawnCli(['serve', ...args], cliEnv(env));
  running.push(p);
  return p;
}

async function waitHttps(port: number, p: Spawned): Promise<void> {
  await until(
    `https://127.0.0.1:${port}/healthz`,
    async () => {
      if (p.child.exitCode !== null) throw new Error(`serve exited ${p.child.exitCode}:\n${p.stderr()}\n${p.stdout()}`);
      return (await httpsGet(`https://127.0.0.1:${port}/healthz`)).status;
    },
    (s) => s === 200,
    30_000,
  );
}

/** The CLI with stdin (for --password-stdin). */
function cli(args: string[], env: NodeJS.ProcessEnv = {}, input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [CLI, ...args], { env: cliEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** A refusal as the user sees it: one "vztpl: ..." message, no stack, no internal error. */
function expectCleanError(stderr: string): void {
  expect(stderr).toMatch(/^vztpl: /);
  expect(stderr).not.toMatch(/internal error|\n\s+at [\w.<>]+ \(|TypeError|fetch failed/);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vztpl-tls-'));
  ca = await makeCa('test-ca');
  otherCa = await makeCa('other-ca');
  certs = {
    first: await issue('first', ca, '1001'),
    renewed: await issue('renewed', ca, '1002'),
    third: await issue('third', ca, '1003'),
    fourth: await issue('fourth', ca, '1004'),
    untrusted: await issue('untrusted', otherCa, '2001'),
  };
  strayKey = join(work, 'stray.key');
  await openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', strayKey);
}, 60_000);

afterEach(async () => {
  for (const p of running.splice(0)) await p.kill();
});

afterAll(async () => {
  for (const p of running.splice(0)) await p.kill();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('vztpl serve over HTTPS', () => {
  let port: number;
  let layout: SmallLayout;
  let authFile: string;
  let certDir: string;
  let server: Spawned | undefined;

  beforeAll(async () => {
    port = await freePort();
    const users = join(work, 'users.yaml');
    await writeFile(
      users,
      serializeUsers(
        [
          { name: 'writer', password: await hashPassword('writer-pw', { N: 1024, r: 8, p: 1 }), scopes: [{ repositories: 'acme/**', actions: ['pull', 'push'] }] },
        ],
        users,
      ),
      { mode: 0o600 },
    );
    // the certificate from the config file, with auth on (anonymous pull)
    const config = join(work, 'registry.yaml');
    await writeFile(
      config,
      `listen: "127.0.0.1:${port}"\nstorage: "fs:${join(work, 'store')}"\ntls:\n  cert: ${certs.first.crt}\n  key: ${certs.first.key}\nauth:\n  enabled: true\n  usersFile: ${users}\n`,
    );
    // not in `running`: this server lives for the whole describe
    server = spawnCli(['serve', '--config', config], cliEnv());
    await waitHttps(port, server);
    layout = await makeSmallLayout(join(work, 'layout'), '1.0.0', { name: 'acme/debian-12-tls', version: '1.0.0', distro: 'debian', release: '12', arch: 'x86_64' });
    authFile = join(work, 'auth.json');
    certDir = join(work, 'certs.d');
    await mkdir(certDir, { recursive: true });
    await copyFile(ca.crt, join(certDir, 'ca.crt'));
  }, 90_000);

  afterAll(async () => {
    await server?.kill();
  });

  it('serves the configured certificate, and the token realm in challenges is https', async () => {
    expect(await peerSerial(port)).toBe('1001');
    const v2 = await httpsGet(`https://127.0.0.1:${port}/v2/`);
    expect(v2.status).toBe(401);
    expect(String(v2.headers['www-authenticate'])).toContain(`realm="https://127.0.0.1:${port}/token"`);
    const viaName = await httpsGet(`https://localhost:${port}/v2/`);
    expect(String(viaName.headers['www-authenticate'])).toContain(`realm="https://localhost:${port}/token"`);
  });

  it('vztpl login, push, pull and create with --ca-file / VZTPL_CA_FILE; without the CA each is refused naming the host and why', async () => {
    const env = { REGISTRY_AUTH_FILE: authFile };
    const base = `https://127.0.0.1:${port}`;
    // login goes through the token realm: over https, verified with the CA file
    const login = await cli(['login', base, '-u', 'writer', '--password-stdin', '--ca-file', ca.crt], env, 'writer-pw\n');
    expect(login.code, login.stderr).toBe(0);
    expect(login.stderr).toContain(`Login Succeeded: writer at 127.0.0.1:${port}`);

    // no CA: the system's CAs do not know this one
    const refused = await cli(['login', base, '-u', 'writer', '--password-stdin'], env, 'writer-pw\n');
    expect(refused.code).toBe(5);
    expectCleanError(refused.stderr);
    expect(refused.stderr).toContain(`the TLS certificate of 127.0.0.1:${port} is not trusted`);
    expect(refused.stderr).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
    expect(refused.stderr).toContain('--ca-file');
    // another CA's file: still refused, and the message says which file was tried
    const otherFile = await cli(['login', base, '-u', 'writer', '--password-stdin', '--ca-file', otherCa.crt], env, 'writer-pw\n');
    expect(otherFile.code).toBe(5);
    expect(otherFile.stderr).toContain(`nor the CA file ${otherCa.crt}`);
    // a CA file that is no certificate: exit 2 naming it, before anything is sent
    const badFile = await cli(['login', base, '-u', 'writer', '--password-stdin', '--ca-file', strayKey], env, 'writer-pw\n');
    expect(badFile.code).toBe(2);
    expect(badFile.stderr).toContain(`CA file ${strayKey}: not a PEM file of CA certificates`);
    // a bare loopback HOST:PORT is plain http (as Docker allows): the HTTPS server closes it, and the message says what to write
    const plain = await cli(['login', `127.0.0.1:${port}`, '-u', 'writer', '--password-stdin', '--ca-file', ca.crt], env, 'writer-pw\n');
    expect(plain.code).toBe(5);
    expectCleanError(plain.stderr);
    expect(plain.stderr).toContain(`name it https://127.0.0.1:${port}`);

    // push (credentials from the login) with VZTPL_CA_FILE; refused without it
    const target = `${base}/acme/debian-12-tls:1.0.0`;
    const noCa = await cli(['push', layout.dir, target], env);
    expect(noCa.code, noCa.stderr).toBe(5);
    expectCleanError(noCa.stderr);
    expect(noCa.stderr).toContain(`the TLS certificate of 127.0.0.1:${port} is not trusted`);
    const push = await cli(['push', layout.dir, target, '--json', '--ca-file', ca.crt], env);
    expect(push.code, push.stderr).toBe(0);
    // VZTPL_CA_FILE does the same, for a second version
    const pushEnv = await cli(['push', layout.dir, `${base}/acme/debian-12-tls:1.0.1`], { ...env, VZTPL_CA_FILE: ca.crt });
    expect(pushEnv.code, pushEnv.stderr).toBe(0);

    // the host side: pull into a store over https, trusting the CA through VZTPL_CA_FILE
    const root = join(work, 'host-store');
    const pullNoCa = await cli(['pull', `${base}/acme/debian-12-tls@1.0.0`, '--root', root], { ...env, VZTPL_HOST_CONFIG: '/nonexistent/host.yaml' });
    expect(pullNoCa.code).toBe(5);
    expectCleanError(pullNoCa.stderr);
    expect(pullNoCa.stderr).toContain(`the TLS certificate of 127.0.0.1:${port} is not trusted`);
    const hostEnv = { ...env, VZTPL_HOST_CONFIG: '/nonexistent/host.yaml' };
    const pull = await cli(['pull', `${base}/acme/debian-12-tls@1.0.0`, '--root', root, '--json', '--ca-file', ca.crt], hostEnv);
    expect(pull.code, pull.stderr).toBe(0);
    expect(parseJsonLines(pull.stdout).find((e) => e.event === 'pulled')).toMatchObject({ name: 'acme/debian-12-tls', version: '1.0.0', digest: layout.manifest.digest });
    const pullEnv = await cli(['pull', `${base}/acme/debian-12-tls@1.0.1`, '--root', join(work, 'host-store-env'), '--json'], { ...hostEnv, VZTPL_CA_FILE: ca.crt });
    expect(pullEnv.code, pullEnv.stderr).toBe(0);
    // host.yaml names the CA of this registry (registries: HOST:PORT: caFile), relative to the file
    const hostYaml = join(work, 'host.yaml');
    await writeFile(hostYaml, `registries:\n  "127.0.0.1:${port}":\n    caFile: ${relative(work, ca.crt)}\n`);
    const pullYaml = await cli(['pull', `${base}/acme/debian-12-tls@1.0.1`, '--root', join(work, 'host-store-yaml'), '--json'], { ...env, VZTPL_HOST_CONFIG: hostYaml });
    expect(pullYaml.code, pullYaml.stderr).toBe(0);
    await writeFile(hostYaml, `registries:\n  "127.0.0.1:${port}":\n    caFile: ${otherCa.crt}\n`);
    const pullOther = await cli(['pull', `${base}/acme/debian-12-tls@1.0.1`, '--root', join(work, 'host-store-yaml2')], { ...env, VZTPL_HOST_CONFIG: hostYaml });
    expect(pullOther.code).toBe(5);
    expect(pullOther.stderr).toContain(`nor the CA file ${otherCa.crt}`);
    if (isRoot) {
      // create on a host that has nothing cached: it pulls over https first
      const fresh = join(work, 'host-store-create');
      const refusedCreate = await cli(['create', '101', '--ostemplate', `${base}/acme/debian-12-tls@1.0.0`, '--layout', 'copy', '--root', fresh], hostEnv);
      expect(refusedCreate.code).toBe(5);
      expectCleanError(refusedCreate.stderr);
      expect(refusedCreate.stderr).toContain(`the TLS certificate of 127.0.0.1:${port} is not trusted`);
      const create = await cli(['create', '101', '--ostemplate', `${base}/acme/debian-12-tls@1.0.0`, '--layout', 'copy', '--root', fresh, '--ca-file', ca.crt], hostEnv);
      expect(create.code, create.stderr).toBe(0);
      const destroy = await cli(['destroy', '101', '--root', fresh], hostEnv);
      expect(destroy.code, destroy.stderr).toBe(0);
    }
  }, 180_000);

  it.skipIf(!haveSkopeo)('skopeo pushes and pulls with the CA in --dest-cert-dir/--src-cert-dir, and refuses without it', async () => {
    const host = `127.0.0.1:${port}`;
    const without = await run('skopeo', ['copy', '--dest-creds', 'writer:writer-pw', `oci:${layout.dir}:1.0.0`, `docker://${host}/acme/skopeo:1.0.0`]);
    expect(without.code).not.toBe(0);
    expect(without.stderr).toMatch(/x509|certificate/i);
    const push = await run('skopeo', ['copy', '--dest-cert-dir', certDir, '--dest-creds', 'writer:writer-pw', `oci:${layout.dir}:1.0.0`, `docker://${host}/acme/skopeo:1.0.0`]);
    expect(push.code, push.stderr).toBe(0);
    const out = join(work, 'skopeo-out');
    const pull = await run('skopeo', ['copy', '--src-cert-dir', certDir, `docker://${host}/acme/skopeo:1.0.0`, `oci:${out}:1.0.0`]);
    expect(pull.code, pull.stderr).toBe(0);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    expect(index.manifests[0]!.digest).toBe(layout.manifest.digest);
  }, 120_000);

  it.skipIf(!havePodman || !isRoot)('podman pulls and pushes with --cert-dir, and refuses without it', async () => {
    const host = `127.0.0.1:${port}`;
    const root = await mkdtemp(join(tmpdir(), 'vztpl-tls-podman-'));
    const base = ['--root', join(root, 'storage'), '--runroot', join(root, 'run'), '--tmpdir', join(root, 'tmp'), '--storage-driver', 'vfs', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs'];
    const podman = (...args: string[]) => run('podman', [...base, ...args], { env: { ...process.env, REGISTRY_AUTH_FILE: join(root, 'auth.json') } });
    await writeFile(join(root, 'auth.json'), '{"auths":{}}\n');
    try {
      // vztpl pushed acme/debian-12-tls:1.0.0 above; podman pulls it over https
      const refused = await podman('pull', '--quiet', `${host}/acme/debian-12-tls:1.0.0`);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/x509|certificate/i);
      const pull = await podman('pull', '--quiet', '--cert-dir', certDir, `${host}/acme/debian-12-tls:1.0.0`);
      expect(pull.code, pull.stderr).toBe(0);
      const push = await podman('push', '--quiet', '--cert-dir', certDir, '--creds', 'writer:writer-pw', `${host}/acme/debian-12-tls:1.0.0`, `${host}/acme/podman:2.0.0`);
      expect(push.code, push.stderr).toBe(0);
      const back = await httpsGet(`https://${host}/v2/`);
      expect(back.status).toBe(401);
      const pulledBack = await podman('pull', '--quiet', '--cert-dir', certDir, `${host}/acme/podman:2.0.0`);
      expect(pulledBack.code, pulledBack.stderr).toBe(0);
    } finally {
      await run('podman', [...base, 'system', 'reset', '--force']).catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('certificate renewal without a restart', () => {
  it('a changed file is served to new connections; a bad one is logged and the old one stays', async () => {
    const dir = join(work, 'renew-files');
    await mkdir(dir, { recursive: true });
    const crt = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    await copyFile(certs.first.crt, crt);
    await copyFile(certs.first.key, key);
    const port = await freePort();
    const p = serve(['--listen', `127.0.0.1:${port}`, '--storage', `fs:${join(work, 'store-renew')}`, '--tls-cert', crt, '--tls-key', key]);
    await waitHttps(port, p);
    expect(await peerSerial(port)).toBe('1001');

    // renewal as certbot's deploy step does it: both files rewritten, no signal
    await writeFile(crt, await readFile(certs.renewed.crt));
    await writeFile(key, await readFile(certs.renewed.key));
    await until('the renewed certificate', () => peerSerial(port), (s) => s === '1002');
    await until('the reload logged', async () => parseJsonLines(p.stdout()), (lines) => lines.some((l) => l.msg === 'TLS certificate reloaded' && l.cert?.serial === '1002' && l.reason === 'files changed'));

    // renewal by rename (a new file moved over the old one, as cert-manager and acme.sh do)
    await writeFile(`${crt}.new`, await readFile(certs.third.crt));
    await writeFile(`${key}.new`, await readFile(certs.third.key));
    await execOk('mv', [`${key}.new`, key]);
    await execOk('mv', [`${crt}.new`, crt]);
    await until('the certificate moved in', () => peerSerial(port), (s) => s === '1003');

    // a key that does not belong to the certificate: an error naming the file, the old certificate stays
    await writeFile(key, await readFile(strayKey));
    const failed = await until('the failed reload logged', async () => parseJsonLines(p.stdout()), (lines) => lines.some((l) => l.level === 50 && l.msg.includes('TLS certificate not reloaded')));
    const error = failed.find((l) => l.level === 50 && l.msg.includes('TLS certificate not reloaded'))!;
    expect(error.msg).toContain(`${key}: the private key does not match the certificate ${crt}`);
    expect(error.msg).toContain('the one in use stays (serial 1003)');
    expect(await peerSerial(port)).toBe('1003');
    // and the server still answers
    expect((await httpsGet(`https://127.0.0.1:${port}/healthz`)).status).toBe(200);
    // a file that is no PEM at all: the same
    await writeFile(crt, 'not a certificate\n');
    await until('the non-PEM reload logged', async () => parseJsonLines(p.stdout()), (lines) => lines.some((l) => l.level === 50 && l.msg.includes(`${crt}: not a PEM certificate`)));
    expect(await peerSerial(port)).toBe('1003');
    // fixed: picked up
    await writeFile(crt, await readFile(certs.fourth.crt));
    await writeFile(key, await readFile(certs.fourth.key));
    await until('the fixed certificate', () => peerSerial(port), (s) => s === '1004');
    expect(p.child.exitCode).toBe(null);
  }, 120_000);

  it('SIGHUP reloads a certificate that changed where no watch sees it (a symlink target elsewhere)', async () => {
    // The configured paths are symlinks into another directory, whose files are rewritten in
    // place: nothing changes in the watched directory, so only SIGHUP can pick the renewal up.
    const real = join(work, 'hup-real');
    const links = join(work, 'hup-links');
    await mkdir(real, { recursive: true });
    await mkdir(links, { recursive: true });
    await copyFile(certs.first.crt, join(real, 'tls.crt'));
    await copyFile(certs.first.key, join(real, 'tls.key'));
    await symlink(join(real, 'tls.crt'), join(links, 'tls.crt'));
    await symlink(join(real, 'tls.key'), join(links, 'tls.key'));
    const port = await freePort();
    // the certificate from VZTPL_TLS_* this time
    const p = serve(['--listen', `127.0.0.1:${port}`, '--storage', `fs:${join(work, 'store-hup')}`], { VZTPL_TLS_CERT: join(links, 'tls.crt'), VZTPL_TLS_KEY: join(links, 'tls.key') });
    await waitHttps(port, p);
    expect(await peerSerial(port)).toBe('1001');
    await writeFile(join(real, 'tls.crt'), await readFile(certs.renewed.crt));
    await writeFile(join(real, 'tls.key'), await readFile(certs.renewed.key));
    await sleep(1500);
    expect(await peerSerial(port)).toBe('1001'); // no watch event, no reload
    p.child.kill('SIGHUP');
    await until('the certificate after SIGHUP', () => peerSerial(port), (s) => s === '1002');
    const reloaded = parseJsonLines(p.stdout()).find((l) => l.msg === 'TLS certificate reloaded');
    expect(reloaded).toMatchObject({ reason: 'SIGHUP', previousSerial: '1001', cert: { serial: '1002' } });
    // a SIGHUP with a broken key: logged, old certificate stays, the server lives on
    await writeFile(join(real, 'tls.key'), await readFile(strayKey));
    p.child.kill('SIGHUP');
    await until('the failed SIGHUP reload logged', async () => parseJsonLines(p.stdout()), (lines) => lines.some((l) => l.level === 50 && l.reason === 'SIGHUP'));
    expect(await peerSerial(port)).toBe('1002');
    expect(p.child.exitCode).toBe(null);
  }, 120_000);
});

describe('bad certificate files at start', () => {
  async function start(args: string[], env: NodeJS.ProcessEnv = {}) {
    const port = await freePort();
    const r = await run(NODE, [CLI, 'serve', '--listen', `127.0.0.1:${port}`, '--storage', `fs:${join(work, 'store-bad')}`, ...args], { env: cliEnv(env), timeoutMs: 60_000 });
    // nothing listens on the port
    const listening = await peerSerial(port).then(
      () => true,
      () => false,
    );
    return { ...r, listening };
  }

  it('a certificate and key that do not match: exit 2 naming both files', async () => {
    const r = await start([], { VZTPL_TLS_CERT: certs.first.crt, VZTPL_TLS_KEY: certs.renewed.key });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`vztpl: ${certs.renewed.key}: the private key does not match the certificate ${certs.first.crt}`);
    expect(r.listening).toBe(false);
  });

  it('an unreadable, missing or non-PEM file, or only one of the two: exit 2 naming it', async () => {
    const missing = await start(['--tls-cert', join(work, 'nope.crt'), '--tls-key', certs.first.key]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`${join(work, 'nope.crt')}: cannot read the TLS certificate: no such file`);
    const swapped = await start(['--tls-cert', certs.first.key, '--tls-key', certs.first.crt]);
    expect(swapped.code).toBe(2);
    expect(swapped.stderr).toContain(`${certs.first.key}: not a PEM certificate`);
    const garbage = join(work, 'garbage.pem');
    await writeFile(garbage, 'hello\n');
    const notPem = await start(['--tls-cert', certs.first.crt, '--tls-key', garbage]);
    expect(notPem.code).toBe(2);
    expect(notPem.stderr).toContain(`${garbage}: not a PEM private key`);
    const onlyCert = await start(['--tls-cert', certs.first.crt]);
    expect(onlyCert.code).toBe(2);
    expect(onlyCert.stderr).toMatch(/tls\.key \(from option --tls-cert\): no private key for the certificate/);
    for (const r of [missing, swapped, notPem, onlyCert]) {
      expect(r.listening).toBe(false);
      expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    }
  }, 60_000);
});

it('plain HTTP is only warned about off loopback: which listen hosts are loopback', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) expect(isLoopback(h), h).toBe(true);
  for (const h of ['0.0.0.0', '::', '10.0.0.5', 'registry.example.net', '128.0.0.1']) expect(isLoopback(h), h).toBe(false);
});
