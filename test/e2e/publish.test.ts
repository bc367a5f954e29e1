// End to end: vztpl publish against a local apt repository. A package made with dpkg-deb, indexed
// with apt-ftparchive and served on 127.0.0.1 by a static node:http server in this file, is
// installed by a test recipe (`from:` the shared Debian host test template, the repository as an
// apt-sources entry) and a flavor of it. The test upgrades the package in the repository and
// proves that publish notices it and publishes x.y.1 with the upgrade in its changelog, publishes
// nothing on a second run, rebuilds and republishes the flavor; that the catalog API and
// `vztpl inspect` give the changelog; that `vztpl outdated` on a host with a container from
// x.y.0 reports it, and `pull --update`; and that two concurrent publishes publish a version once
// (fs storage, and the run's Ceph RGW when there is one).
// Needs root, mmdebstrap (or a warm build cache), dpkg-deb, apt-ftparchive (apt-utils), overlayfs.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { buildServer } from '../../registry/server.ts';
import { S3Driver } from '../../registry/storage/s3.ts';
import { BUILD_CACHE, isRoot, runCli, spawnCli, tempDir, type CliResult } from '../helpers/build-env.ts';
import { BASE_NAME, buildTemplates, finishHostTests, host, hostEnv, shOk, startHostRegistry, type Host, type HostRegistry } from '../helpers/host-env.ts';
import { adminClient } from '../services/s3-admin.ts';
import { s3TestEnv, testDriverOptions } from '../services/s3-env.ts';

const ready = isRoot && Boolean(findProgram('mmdebstrap')) && Boolean(findProgram('dpkg-deb')) && Boolean(findProgram('apt-ftparchive'));
const s3 = s3TestEnv();

const NAME = 'debian-12-x86_64-pubtest';
const FLAVOR = 'debian-12-x86_64-pubtest-web';
const PACKAGE = 'vzt-hello';

interface PublishLine {
  event: 'publish';
  name: string;
  status: 'published' | 'unchanged' | 'concurrent';
  version: string;
  digest: string;
  repository: string;
  conflicts: string[];
  changelog?: { previous?: string; recipeChanged: boolean; added: unknown[]; removed: unknown[]; upgraded: Array<{ name: string; from: string; to: string }> };
}

const publishLines = (r: CliResult) =>
  r.stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as PublishLine);

/** A static file server for the apt repository: GET and HEAD of files under `dir`. */
async function serveDir(dir: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    const file = join(dir, path);
    stat(file).then(
      (st) => {
        if (!st.isFile()) throw new Error('not a file');
        res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/octet-stream' });
        if (req.method === 'HEAD') return res.end();
        createReadStream(file).pipe(res);
      },
      () => {
        res.writeHead(404).end();
      },
    ).catch(() => res.writeHead(404).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

/** Replaces the repository's package with `version` of it, and indexes it again. */
async function releasePackage(repo: string, work: string, version: string): Promise<void> {
  const pkg = join(work, `pkg-${version}`);
  await rm(pkg, { recursive: true, force: true });
  await mkdir(join(pkg, 'DEBIAN'), { recursive: true });
  await mkdir(join(pkg, 'usr/share', PACKAGE), { recursive: true });
  await writeFile(
    join(pkg, 'DEBIAN/control'),
    `Package: ${PACKAGE}\nVersion: ${version}\nArchitecture: all\nMaintainer: vztpl tests <tests@example.invalid>\nDescription: vztpl publish test package\n`,
  );
  await writeFile(join(pkg, 'usr/share', PACKAGE, 'version'), `${version}\n`);
  await shOk('sh', ['-c', `rm -f "$1"/*.deb && SOURCE_DATE_EPOCH=1700000000 dpkg-deb --root-owner-group -Zgzip --build "$2" "$1/${PACKAGE}_${version}_all.deb" >/dev/null`, 'sh', repo, pkg]);
  await shOk('sh', ['-c', 'cd "$1" && apt-ftparchive packages . > Packages && apt-ftparchive release . > Release', 'sh', repo]);
}

describe.skipIf(!ready)('vztpl publish, changelog, outdated: a local apt repository, upgraded', () => {
  let work: string;
  let reg: HostRegistry;
  let repo: { server: Server; url: string };
  let repoDir: string;
  let recipes: string;
  let h: Host;
  const env = hostEnv();
  const publish = (registry: string, out: string, ...more: string[]) =>
    runCli(['publish', join(recipes, `${FLAVOR}.yaml`), join(recipes, `${NAME}.yaml`), '--registry', registry, '--cache-dir', BUILD_CACHE, '--out-dir', out, '--json', ...more], { env, cleanEnv: true });
  const publishOk = async (registry: string, out: string) => {
    const r = await publish(registry, out);
    if (r.code !== 0) throw new Error(`vztpl publish exited ${r.code}:\n${r.stderr}`);
    return publishLines(r);
  };
  const api = async (path: string) => {
    const res = await fetch(`${reg.url}${path}`);
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  beforeAll(async () => {
    work = await tempDir('publish');
    await buildTemplates(work); // the shared Debian test template and its recipe, warm
    repoDir = join(work, 'apt');
    await mkdir(repoDir, { recursive: true });
    await releasePackage(repoDir, work, '1.0-1');
    repo = await serveDir(repoDir);
    recipes = join(work, 'recipes');
    await writeFile(
      join(recipes, `${NAME}.yaml`),
      [
        `name: ${NAME}`,
        'version: 1.0.0',
        `from: ${BASE_NAME}`,
        'apt-sources:',
        `  - uri: ${repo.url}`,
        '    suite: ./',
        '    trusted: true',
        'steps:',
        `  - install: [${PACKAGE}]`,
        '',
      ].join('\n'),
    );
    await writeFile(join(recipes, `${FLAVOR}.yaml`), [`name: ${FLAVOR}`, 'version: 1.0.0', `from: ${NAME}`, 'steps:', '  - name: web mark', '    run: echo web > /opt/vzt-pub-web', ''].join('\n'));
    reg = await startHostRegistry(join(work, 'registry'));
    h = host(join(work, 'store'), reg.host);
  }, 600_000);

  afterAll(async () => {
    repo?.server.close();
    await h?.run('destroy', 'pub1');
    await finishHostTests(work, reg);
  });

  it('the first publish builds base before flavor and publishes both as the recipes versions', async () => {
    const lines = await publishOk(reg.host, join(work, 'out'));
    expect(lines.map((l) => [l.name, l.status, l.version])).toEqual([
      [NAME, 'published', '1.0.0'],
      [FLAVOR, 'published', '1.0.0'],
    ]);
    expect(lines[0]!.changelog).toMatchObject({ recipeChanged: true, upgraded: [] });
    const version = await api(`/api/v1/templates/${NAME}/versions/1.0.0`);
    expect(version.body.packages).toContainEqual({ name: PACKAGE, version: '1.0-1', arch: 'all' });
    // the package's repository was there for the step only
    const tags = (await (await fetch(`${reg.url}/v2/${NAME}/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags.sort()).toEqual(['1', '1.0', '1.0.0', 'latest']);
  }, 900_000);

  it('a second run publishes nothing: unchanged', async () => {
    const lines = await publishOk(reg.host, join(work, 'out'));
    expect(lines.map((l) => [l.name, l.status, l.version])).toEqual([
      [NAME, 'unchanged', '1.0.0'],
      [FLAVOR, 'unchanged', '1.0.0'],
    ]);
  }, 600_000);

  it('a host with a container from 1.0.0', async () => {
    await h.ok('create', 'pub1', '--ostemplate', `${NAME}@1.0.0`);
    await h.ok('pull', `${FLAVOR}@1.0.0`);
  }, 300_000);

  it('the package upgraded in the repository: x.y.1 of the recipe and of its flavor, with the upgrade in the changelog', async () => {
    await releasePackage(repoDir, work, '1.1-1');
    const lines = await publishOk(reg.host, join(work, 'out'));
    expect(lines.map((l) => [l.name, l.status, l.version])).toEqual([
      [NAME, 'published', '1.0.1'],
      [FLAVOR, 'published', '1.0.1'],
    ]);
    for (const l of lines) {
      expect(l.changelog).toMatchObject({ previous: '1.0.0', recipeChanged: false, added: [], removed: [] });
      expect(l.changelog!.upgraded).toEqual([{ name: PACKAGE, arch: 'all', from: '1.0-1', to: '1.1-1' }]);
    }
    // the layout publish left holds the published image: inspect shows its changelog
    const local = await runCli(['inspect', join(work, 'out', NAME)], { env, cleanEnv: true });
    expect(local.code, local.stderr).toBe(0);
    expect(local.stdout).toContain(`${NAME} 1.0.1`);
    expect(local.stdout).toContain('Changes since 1.0.0: recipe unchanged, 1 package change');
    expect(local.stdout).toContain(`  ${PACKAGE} 1.0-1 -> 1.1-1`);
    const again = await publishOk(reg.host, join(work, 'out'));
    expect(again.map((l) => [l.name, l.status, l.version])).toEqual([
      [NAME, 'unchanged', '1.0.1'],
      [FLAVOR, 'unchanged', '1.0.1'],
    ]);
  }, 900_000);

  it('the catalog API gives the changelog of a version; vztpl inspect of the published version shows it', async () => {
    const c = await api(`/api/v1/templates/${NAME}/versions/1.0.1/changelog`);
    expect(c.status).toBe(200);
    expect(c.body).toMatchObject({ name: NAME, version: '1.0.1', previous: '1.0.0', recipeChanged: false, recorded: true, added: [], removed: [] });
    expect(c.body.upgraded).toEqual([{ name: PACKAGE, arch: 'all', from: '1.0-1', to: '1.1-1' }]);
    const first = await api(`/api/v1/templates/${NAME}/versions/1.0.0/changelog`);
    expect(first.body).toMatchObject({ version: '1.0.0', recipeChanged: true, upgraded: [] });
    expect(first.body.previous).toBeUndefined();
    expect((await api(`/api/v1/templates/${NAME}/versions/9.9.9/changelog`)).status).toBe(404);
    // the versions list stays small: the changelog has its own route
    const list = await api(`/api/v1/templates/${NAME}/versions`);
    expect(list.body.versions.every((v: Record<string, unknown>) => !('changelog' in v))).toBe(true);

    const remote = await runCli(['inspect', `${reg.host}/${FLAVOR}:1.0.1`], { env, cleanEnv: true });
    expect(remote.code, remote.stderr).toBe(0);
    expect(remote.stdout).toContain(`${FLAVOR} 1.0.1`);
    expect(remote.stdout).toContain(`  ${PACKAGE} 1.0-1 -> 1.1-1`);
    const json = await runCli(['inspect', `${reg.host}/${NAME}:1.0.1`, '--json'], { env, cleanEnv: true });
    expect(JSON.parse(json.stdout).changelog.upgraded).toEqual([{ name: PACKAGE, arch: 'all', from: '1.0-1', to: '1.1-1' }]);
  });

  it('vztpl outdated reports the container from 1.0.0 and the cached templates; pull --update brings the newest in range', async () => {
    const r = await h.ok('outdated');
    expect(r.stdout).toContain(`container pub1: ${NAME} 1.0.0 -> 1.0.1`);
    expect(r.stdout).toContain(`template ${NAME} 1.0.0 -> 1.0.1`);
    expect(r.stdout).toContain(`template ${FLAVOR} 1.0.0 -> 1.0.1`);
    expect(r.stdout).toContain(`  1.0.1: ${PACKAGE} 1.0-1 -> 1.1-1`);
    const j = JSON.parse((await h.ok('outdated', '--json')).stdout) as { outdated: Array<Record<string, any>>; errors: unknown[] };
    expect(j.errors).toEqual([]);
    const ct = j.outdated.find((e) => e.kind === 'container' && e.ctid === 'pub1')!;
    expect(ct).toMatchObject({ name: NAME, version: '1.0.0', source: reg.url });
    expect(ct.newer.map((n: { version: string }) => n.version)).toEqual(['1.0.1']);
    expect(ct.newer[0].changelog.upgraded).toEqual([{ name: PACKAGE, arch: 'all', from: '1.0-1', to: '1.1-1' }]);
    expect(ct.newer[0].summary).toBe(`${PACKAGE} 1.0-1 -> 1.1-1`);

    const pulled = await h.ok('pull', FLAVOR, '--update');
    expect(pulled.stdout).toMatch(new RegExp(`^${FLAVOR}:1\\.0\\.1 sha256:`));
    const after = JSON.parse((await h.ok('outdated', '--json')).stdout) as { outdated: Array<Record<string, any>> };
    const flavors = after.outdated.filter((e) => e.kind === 'template' && e.name === FLAVOR);
    expect(flavors.map((e) => [e.version, e.newer.length]).sort()).toEqual([
      ['1.0.0', 1],
      ['1.0.1', 0],
    ]);
    expect((await h.run('pull', 'never-pulled-x86_64', '--update')).code).toBe(2);
  }, 300_000);

  it('concurrent publishes (fs storage) publish the version once: one wins, the other reports it', async () => {
    await releasePackage(repoDir, work, '1.2-1');
    const a = spawnCli(['publish', join(recipes, `${NAME}.yaml`), '--registry', reg.host, '--cache-dir', BUILD_CACHE, '--out-dir', join(work, 'out-a'), '--json'], { env, cleanEnv: true });
    const b = spawnCli(['publish', join(recipes, `${NAME}.yaml`), '--registry', reg.host, '--cache-dir', BUILD_CACHE, '--out-dir', join(work, 'out-b'), '--json'], { env, cleanEnv: true });
    const results = await Promise.all([a.result, b.result]);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const outcomes = results.map((r) => publishLines(r)[0]!);
    expect(outcomes.map((o) => o.version)).toEqual(['1.0.2', '1.0.2']);
    expect(outcomes.filter((o) => o.status === 'published')).toHaveLength(1);
    const winner = outcomes.find((o) => o.status === 'published')!;
    const loser = outcomes.find((o) => o.status !== 'published')!;
    // refused by the registry (409) and reported as the other's: 'concurrent'; or, when the other
    // had finished before this one listed the versions, 'unchanged'
    expect(['concurrent', 'unchanged']).toContain(loser.status);
    console.log(`publish.test: concurrent publishes on fs: the second one ${loser.status}`);
    expect(loser.digest).toBe(winner.digest);
    const versions = await api(`/api/v1/templates/${NAME}/versions`);
    expect(versions.body.versions.map((v: { version: string }) => v.version)).toEqual(['1.0.0', '1.0.1', '1.0.2']);
  }, 900_000);

  describe.skipIf(!s3)('on S3 (the run\'s Ceph RGW)', () => {
    it('concurrent publishes publish the version once', async () => {
      const admin = adminClient(s3!);
      const Bucket = `vztpl-pub-${randomBytes(4).toString('hex')}`;
      await admin.send(new CreateBucketCommand({ Bucket }));
      const { app } = await buildServer({ driver: new S3Driver(testDriverOptions(s3!, Bucket, { prefix: 'registry' })) });
      await app.listen({ host: '127.0.0.1', port: 0 });
      const registry = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      try {
        const run = (out: string) =>
          spawnCli(['publish', join(recipes, `${NAME}.yaml`), '--registry', registry, '--cache-dir', BUILD_CACHE, '--out-dir', join(work, out), '--json'], { env, cleanEnv: true }).result;
        const results = await Promise.all([run('s3-a'), run('s3-b')]);
        for (const r of results) expect(r.code, r.stderr).toBe(0);
        const outcomes = results.map((r) => publishLines(r)[0]!);
        expect(outcomes.map((o) => o.version)).toEqual(['1.0.0', '1.0.0']);
        expect(outcomes.filter((o) => o.status === 'published')).toHaveLength(1);
        expect(['concurrent', 'unchanged']).toContain(outcomes.find((o) => o.status !== 'published')!.status);
        console.log(`publish.test: concurrent publishes on S3: the second one ${outcomes.find((o) => o.status !== 'published')!.status}`);
        const res = await fetch(`http://${registry}/api/v1/templates/${NAME}/versions`);
        expect(((await res.json()) as { versions: Array<{ version: string }> }).versions.map((v) => v.version)).toEqual(['1.0.0']);
      } finally {
        await app.close();
        admin.destroy();
      }
    }, 900_000);
  });
});
