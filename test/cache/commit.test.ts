// End to end: a container back into a template. runc makes changes (files, deletions, a
// replaced directory, modes, owners, a removed package) across a snapshot and live changes;
// `vztpl commit` publishes them as a new version on a vztpl registry, sending only the new
// layers; `create` of that version in another store shows the same tree; the package lock was
// read again from the container; a commit with --out writes an OCI layout skopeo reads.
// Needs root, mmdebstrap (or a warm build cache), runc and overlayfs.
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { isRoot, tempDir } from '../helpers/build-env.ts';
import { BASE_NAME, buildTemplates, finishHostTests, host, pushTemplate, shOk, startHostRegistry, storeView, treeListing, type BuiltTemplate, type Host, type HostRegistry } from '../helpers/host-env.ts';

const ready = isRoot && Boolean(findProgram('mmdebstrap')) && Boolean(findProgram('runc'));

/** A tree listing without the container's own identity, which no two containers share. */
const withoutIdentity = (listing: string[]) => listing.filter((l) => !/^etc\/(hostname|machine-id)\b/.test(l));

describe.skipIf(!ready)('vztpl commit', () => {
  let work: string;
  let reg: HostRegistry;
  let base: BuiltTemplate;
  let h: Host;
  let root: string;

  beforeAll(async () => {
    work = await tempDir('commit');
    ({ base } = await buildTemplates(work));
    reg = await startHostRegistry(join(work, 'registry'));
    await pushTemplate(base.dir, reg.host, BASE_NAME, '1.0.0');
    root = join(work, 'store');
    h = host(root, reg.host);
  });

  afterAll(() => finishHostTests(work, reg));

  it('publishes snapshots and live changes as layers above the template; create of it gives the same tree', async () => {
    await h.ok('create', '1', '--ostemplate', BASE_NAME, '--hostname', 'source');
    const sh = (script: string) => h.ok('exec', '1', '--', '/bin/sh', '-ec', script);
    await sh('mkdir -p /srv/app/conf; echo v1 > /srv/app/conf/a; chown 33:33 /srv/app/conf/a; chmod 0600 /srv/app/conf/a; ln -s conf/a /srv/app/link');
    await h.ok('snapshot', '1', '--name', 'app');
    await sh('echo v2 > /srv/app/conf/a; rm /srv/app/link; rm -rf /usr/share/doc; mkdir /usr/share/doc; echo only > /usr/share/doc/README; rm /etc/motd; apt-get purge -y -q netbase >/dev/null 2>&1');
    const sourceTree = withoutIdentity(treeListing(join(root, 'containers', '1', 'rootfs')));

    const from = reg.requests.length;
    const r = await h.ok('commit', '1', `${reg.host}/${BASE_NAME}-app:2.0.0`, '--json');
    const committed = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>).find((e) => e.event === 'committed')!;
    expect(committed.templateLayers).toBe(base.layers.length);
    expect(committed.newLayers.map((l: { from: string }) => l.from)).toEqual(['snapshot app', 'live changes']);
    // Only the new layers (and the config and manifest) travelled: the template's were mounted or found.
    const uploads = reg.requests.slice(from).filter((q) => q.method === 'POST' || q.method === 'PUT' || q.method === 'PATCH');
    for (const l of base.layers) expect(uploads.some((q) => q.url.includes(l.digest.slice(7)) && !q.url.includes('mount='))).toBe(false);

    // The published version, on another host.
    const other = host(join(work, 'other'), reg.host);
    await other.ok('create', '2', '--ostemplate', `${BASE_NAME}-app@2.0.0`);
    const copyTree = withoutIdentity(treeListing(join(work, 'other', 'containers', '2', 'rootfs')));
    expect(copyTree).toEqual(sourceTree);
    expect((await other.ok('exec', '2', '--', 'cat', '/etc/hostname')).stdout).toBe('ct2\n');
    // The package lock was read again: netbase is gone from it, the template's lock has it.
    const inspect = JSON.parse((await shOk('skopeo', ['inspect', '--tls-verify=false', '--config', '--raw', `docker://${reg.host}/${BASE_NAME}-app:2.0.0`]))) as { history: Array<{ created_by?: string }>; 'org.openvz.template': { name: string; version: string; packages: Array<{ name: string }> } };
    const meta = inspect['org.openvz.template'];
    expect(meta).toMatchObject({ name: `${BASE_NAME}-app`, version: '2.0.0' });
    expect(meta.packages.map((p) => p.name)).not.toContain('netbase');
    expect(meta.packages.map((p) => p.name)).toContain('dpkg');
    expect(inspect.history.slice(-2).map((e) => e.created_by)).toEqual(['vztpl commit 1: snapshot app', 'vztpl commit 1: live changes']);
    const baseConfig = JSON.parse(await readFile(join(base.dir, 'blobs', 'sha256', base.configDigest.slice(7)), 'utf8')) as { 'org.openvz.template': { packages: Array<{ name: string }> } };
    expect(baseConfig['org.openvz.template'].packages.map((p) => p.name)).toContain('netbase');

    // Versions are immutable: other content under 2.0.0 is refused, and nothing changes.
    await h.ok('exec', '1', '--', 'touch', '/root/more');
    const again = await h.run('commit', '1', `${reg.host}/${BASE_NAME}-app:2.0.0`);
    expect(again.code).not.toBe(0);
    await other.ok('destroy', '2');
  });

  it('kill -9 during a commit leaves the container as it was and no half-written layout', async () => {
    await h.ok('create', '6', '--ostemplate', BASE_NAME);
    await h.ok('exec', '6', '--', '/bin/sh', '-ec', 'mkdir -p /srv/k; for i in $(seq 300); do head -c 20000 /dev/urandom > /srv/k/f$i; done');
    await h.ok('snapshot', '6', '--name', 'k');
    await h.ok('exec', '6', '--', '/bin/sh', '-ec', 'echo live > /srv/live');
    const before = treeListing(join(root, 'containers', '6', 'rootfs'));
    const out = join(work, 'killed-layout');
    const t0 = performance.now();
    await h.ok('commit', '6', `${BASE_NAME}-k:1.0.0`, '--out', out);
    const span = performance.now() - t0;
    const complete = JSON.parse(await shOk('skopeo', ['inspect', '--raw', `oci:${out}`])) as { layers: unknown[] };
    const outcomes = { complete: 0, absent: 0 };
    for (let i = 0; i < 5; i++) {
      await rm(out, { recursive: true, force: true });
      const p = h.spawn('commit', '6', `${BASE_NAME}-k:1.0.${i + 1}`, '--out', out);
      await new Promise((r) => setTimeout(r, ((i + Math.random()) / 4) * span));
      p.child.kill('SIGKILL');
      await p.result;
      expect(treeListing(join(root, 'containers', '6', 'rootfs'))).toEqual(before);
      if (await readFile(join(out, 'index.json')).then(() => true, () => false)) {
        outcomes.complete++;
        expect((JSON.parse(await shOk('skopeo', ['inspect', '--raw', `oci:${out}`])) as { layers: unknown[] }).layers).toHaveLength(complete.layers.length);
      } else outcomes.absent++;
    }
    console.log(`killed commits: ${JSON.stringify(outcomes)}`);
    // The next commit and list sweep what the killed ones left: no temporaries anywhere.
    await h.ok('commit', '6', `${BASE_NAME}-k:1.0.9`, '--out', out);
    await h.ok('list');
    expect((await readdir(work)).filter((n) => n.startsWith('killed-layout.'))).toEqual([]);
    expect((await storeView(root)).tmp).toEqual([]);
    expect((await h.ok('snapshots', '6', '--json')).stdout).toContain('"k"');
    await h.ok('destroy', '6');
  });

  it('--out writes a layout any OCI tool reads; an unchanged container adds no layer; bad input is refused', async () => {
    await h.ok('create', '3', '--ostemplate', BASE_NAME);
    const out = join(work, 'layout');
    await h.ok('commit', '3', `${BASE_NAME}-same:1.0.0`, '--out', out);
    const raw = JSON.parse(await shOk('skopeo', ['inspect', '--raw', `oci:${out}`])) as { layers: Array<{ digest: string }> };
    // Only the identity files changed, and they are not part of a template.
    expect(raw.layers.map((l) => l.digest)).toEqual(base.layers.map((l) => l.digest));
    const missing = await h.run('commit', '3', `${BASE_NAME}-same:1.0.0`);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('names no registry');
    expect((await h.run('commit', '3', `${reg.host}/${BASE_NAME}-same:latest`)).code).toBe(2);
    expect((await h.run('commit', 'nope', `${reg.host}/x:1.0.0`)).code).toBe(4);
    await h.ok('create', '4', '--ostemplate', BASE_NAME, '--layout', 'copy');
    expect((await h.run('commit', '4', `${reg.host}/x:1.0.0`)).code).toBe(2);
    for (const ctid of ['1', '3', '4']) await h.ok('destroy', ctid);
    expect((await storeView(root)).tmp).toEqual([]);
  });
});
