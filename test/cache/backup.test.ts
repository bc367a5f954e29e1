// End to end: backups, restores and moves of overlay containers through a vztpl registry, with
// runc making the changes. A restore into another store gives the same tree (paths, modes,
// owners, contents, xattrs, whiteouts resolved), the same hostname and machine-id and the
// snapshots; a backup after a 1 MB change sends about 1 MB (counted at the registry); a move
// leaves nothing on the source and a working container on the target; kill -9 during backup and
// restore leaves things as before or after; hostile backups are refused with nothing created.
// Needs root, mmdebstrap (or a warm build cache), runc and overlayfs.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { RegistryClient } from '../../client/registry-client.ts';
import { isRoot, tempDir } from '../helpers/build-env.ts';
import { BASE_NAME, buildTemplates, finishHostTests, host, mountsUnder, pushTemplate, startHostRegistry, storeView, treeListing, type Host, type HostRegistry } from '../helpers/host-env.ts';
import { archive, compress, file, MEDIA_TYPE, sha256 } from './hostile.ts';

const ready = isRoot && Boolean(findProgram('mmdebstrap')) && Boolean(findProgram('runc'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MB = 1 << 20;

describe.skipIf(!ready)('vztpl backup, backups, restore, move', () => {
  let work: string;
  let reg: HostRegistry;
  let h: Host;
  let other: Host;
  let root: string;
  let otherRoot: string;
  const rootfs = (r: string, ctid: string) => join(r, 'containers', ctid, 'rootfs');
  const tree = async (x: Host, ctid: string) => {
    await x.ok('exec', ctid, '--', 'true');
    return treeListing(rootfs(x.root, ctid));
  };
  const names = async (x: Host, ctid: string) => (JSON.parse((await x.ok('snapshots', ctid, '--json')).stdout) as Array<{ name: string }>).map((s) => s.name);
  const sh = (x: Host, ctid: string, script: string) => x.ok('exec', ctid, '--', '/bin/sh', '-ec', script);
  const repo = (name: string) => `${reg.host}/backups/${name}`;
  const events = (stdout: string) => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);

  beforeAll(async () => {
    work = await tempDir('backup');
    const { base } = await buildTemplates(work);
    reg = await startHostRegistry(join(work, 'registry'));
    await pushTemplate(base.dir, reg.host, BASE_NAME, '1.0.0');
    root = join(work, 'store');
    otherRoot = join(work, 'other');
    h = host(root, reg.host);
    other = host(otherRoot, reg.host);
    await h.ok('pull', BASE_NAME);
  });

  afterAll(() => finishHostTests(work, reg));

  it('restores the same tree, identity and snapshots in another store; the next backup sends only the change', async () => {
    await h.ok('create', '1', '--ostemplate', BASE_NAME, '--hostname', 'source');
    await sh(h, '1', 'mkdir -p /srv/app/conf; echo v1 > /srv/app/conf/a; chown 33:33 /srv/app/conf/a; chmod 0600 /srv/app/conf/a; ln -s conf/a /srv/app/link; mkfifo /srv/app/fifo; echo h > /srv/app/h1; ln /srv/app/h1 /srv/app/h2; setfattr -n user.note -v first /srv/app/conf/a || true; echo gone > /root/gone');
    await h.ok('snapshot', '1', '--name', 's1');
    await sh(h, '1', 'echo v2 > /srv/app/conf/a; rm /srv/app/link /root/gone; rm -rf /usr/share/doc; mkdir /usr/share/doc; echo only > /usr/share/doc/README; rm /etc/motd; chmod 0700 /srv/app');
    const machineId = (await sh(h, '1', 'cat /etc/machine-id')).stdout;

    const from = reg.requests.length;
    const r = await h.ok('backup', '1', `${repo('ct1')}:b1`, '--json');
    const done = events(r.stdout).find((e) => e.event === 'backed-up')!;
    expect(done.frozen).toBe('backup-b1');
    // The template's layers were mounted or found, never uploaded.
    const layers = done.layers as Array<{ from: string; sent: boolean; mounted?: boolean }>;
    expect(layers.filter((l) => l.from.startsWith('template')).every((l) => !l.sent)).toBe(true);
    expect(layers.filter((l) => l.from.startsWith('template')).some((l) => l.mounted)).toBe(true);
    expect(layers.filter((l) => l.from.startsWith('snapshot')).map((l) => l.from)).toEqual(['snapshot s1', 'snapshot backup-b1']);
    const sentB1 = reg.uploadedBytes(from);
    expect(sentB1).toBe(done.sent);
    expect(await names(h, '1')).toEqual(['s1', 'backup-b1']);
    const source = await tree(h, '1');

    const restored = await other.ok('restore', `${repo('ct1')}:b1`, '7', '--json');
    expect(events(restored.stdout).find((e) => e.event === 'restored')!.templatePulled).toBe(true);
    expect(await tree(other, '7')).toEqual(source);
    expect((await sh(other, '7', 'cat /etc/hostname')).stdout).toBe('source\n');
    expect((await sh(other, '7', 'cat /etc/machine-id')).stdout).toBe(machineId);
    expect(await names(other, '7')).toEqual(['s1', 'backup-b1']);
    // The restored container is a container like any other: it runs, snapshots, rolls back, merges.
    await sh(other, '7', 'echo after > /root/after');
    await other.ok('rollback', '7', 's1', '--force');
    expect((await sh(other, '7', 'cat /srv/app/conf/a; test ! -e /root/after && echo clean')).stdout).toBe('v1\nclean\n');
    await other.ok('snapshot', 'delete', '7', 's1');
    expect((await sh(other, '7', 'cat /srv/app/conf/a')).stdout).toBe('v1\n');
    await other.ok('destroy', '7');

    // 1 MB of new data: about 1 MB travels (the unchanged snapshots are not packed or sent again).
    await sh(h, '1', 'head -c 1048576 /dev/urandom > /root/onemb');
    const from2 = reg.requests.length;
    await h.ok('backup', '1', `${repo('ct1')}:b2`);
    const sent2 = reg.uploadedBytes(from2);
    console.log(`backup b1 sent ${sentB1} bytes; b2 after a 1 MB change sent ${sent2} bytes`);
    expect(sent2).toBeGreaterThan(MB);
    expect(sent2).toBeLessThan(1.1 * MB);
    // Nothing changed: only the config.
    const from3 = reg.requests.length;
    await h.ok('backup', '1', `${repo('ct1')}:b3`);
    expect(reg.uploadedBytes(from3)).toBeLessThan(64 << 10);

    const list = JSON.parse((await h.ok('backups', repo('ct1'), '--json')).stdout) as Array<{ tag: string; ctid: string; snapshots: number; added: number; size: number }>;
    expect(list.map((b) => b.tag)).toEqual(['b1', 'b2', 'b3']);
    expect(list.map((b) => b.ctid)).toEqual(['1', '1', '1']);
    expect(list[1]!.added).toBeGreaterThan(MB);
    expect(list[1]!.added).toBeLessThan(1.1 * MB);
    expect(list[2]!.added).toBe(0);
    expect((await h.ok('backups', repo('ct1'))).stdout).toMatch(/^TAG\s+DATE\s+CTID/);

    // The latest backup restores with the cached template: nothing of the template is fetched.
    const t2 = await tree(h, '1');
    const r2 = await other.ok('restore', `${repo('ct1')}:b3`, '8', '--json');
    expect(events(r2.stdout).find((e) => e.event === 'restored')!.templatePulled).toBe(false);
    expect(await tree(other, '8')).toEqual(t2);
    // Its snapshots are store layers: commit packs them as it packs frozen dirs.
    const committed = events((await other.ok('commit', '8', `${BASE_NAME}-restored:1.0.0`, '--out', join(work, 'restored-layout'), '--json')).stdout).find((e) => e.event === 'committed')!;
    expect(committed.newLayers.map((l: { from: string }) => l.from)).toEqual(['snapshot s1', 'snapshot backup-b1', 'snapshot backup-b2']);
    await other.ok('destroy', '8');
    await h.ok('destroy', '1');
  });

  it('move leaves nothing on the source and a working container on the target', async () => {
    await h.ok('create', '2', '--ostemplate', BASE_NAME, '--hostname', 'mover');
    await sh(h, '2', 'echo moved > /root/m; rm /etc/issue');
    const before = await tree(h, '2');
    const r = await h.ok('move', '2', '--to', `${repo('ct2')}:m1`);
    expect(r.stdout).toContain('restore');
    expect(existsSync(join(root, 'containers', '2'))).toBe(false);
    expect((await h.run('exec', '2', '--', 'true')).code).toBe(4);
    expect((await storeView(root)).containers).toEqual([]);
    expect(await mountsUnder(join(root, 'containers'))).toEqual([]);
    await other.ok('restore', `${repo('ct2')}:m1`, '2');
    expect(await tree(other, '2')).toEqual(before);
    expect((await sh(other, '2', 'cat /root/m /etc/hostname')).stdout).toBe('moved\nmover\n');
    await other.ok('destroy', '2');
  });

  it('kill -9 during backup and restore leaves things as before or after', async () => {
    await h.ok('create', '3', '--ostemplate', BASE_NAME);
    await sh(h, '3', 'head -c 4000000 /dev/urandom > /root/big');
    let t0 = performance.now();
    await h.ok('backup', '3', `${repo('ct3')}:probe`);
    const backupMs = performance.now() - t0;
    const outcomes = { backup: { before: 0, after: 0 }, restore: { before: 0, after: 0 } };
    for (let i = 0; i < 5; i++) {
      await sh(h, '3', `head -c 3000000 /dev/urandom > /root/n${i}`);
      const live = await tree(h, '3');
      const snaps = await names(h, '3');
      const p = h.spawn('backup', '3', `${repo('ct3')}:k${i}`);
      await sleep(((i + Math.random()) / 3) * backupMs);
      p.child.kill('SIGKILL');
      await p.result;
      // The container's files are untouched; at most the live changes were frozen.
      expect(await tree(h, '3')).toEqual(live);
      const after = await names(h, '3');
      expect([snaps, [...snaps, `backup-k${i}`]]).toContainEqual(after);
      const tags = (JSON.parse((await h.ok('backups', repo('ct3'), '--json')).stdout) as Array<{ tag: string }>).map((b) => b.tag);
      outcomes.backup[tags.includes(`k${i}`) ? 'after' : 'before']++;
    }
    // A whole backup afterwards, restored exactly.
    await h.ok('backup', '3', `${repo('ct3')}:final`);
    const final = await tree(h, '3');
    t0 = performance.now();
    await other.ok('restore', `${repo('ct3')}:final`, '30');
    const restoreMs = performance.now() - t0;
    await other.ok('destroy', '30');
    for (let i = 0; i < 5; i++) {
      const p = other.spawn('restore', `${repo('ct3')}:final`, `3${i + 1}`);
      await sleep(((i + Math.random()) / 4) * restoreMs);
      p.child.kill('SIGKILL');
      await p.result;
      await other.ok('list');
      const present = existsSync(join(otherRoot, 'containers', `3${i + 1}`, 'container.json'));
      outcomes.restore[present ? 'after' : 'before']++;
      if (present) {
        expect(await tree(other, `3${i + 1}`)).toEqual(final);
        await other.ok('destroy', `3${i + 1}`);
      }
      // Whatever the killed restore left half-made was swept by the list.
      expect((await readdir(join(otherRoot, 'containers'))).filter((n) => n.startsWith('.'))).toEqual([]);
    }
    console.log(`killed backups and restores: ${JSON.stringify(outcomes)}`);
    await h.ok('destroy', '3');
  });

  it('refuses hostile backups with nothing created', async () => {
    await h.ok('create', '4', '--ostemplate', BASE_NAME, '--hostname', 'victim');
    await sh(h, '4', 'echo x > /root/x');
    await h.ok('backup', '4', `${repo('ct4')}:good`);
    const client = new RegistryClient(reg.url);
    const good = await client.getManifest('backups/ct4', 'good', ['application/vnd.oci.image.manifest.v1+json']);
    const manifest = JSON.parse(good.bytes.toString('utf8')) as { config: { digest: `sha256:${string}`; size: number }; layers: Array<{ mediaType: string; digest: `sha256:${string}`; size: number }> };
    const config = JSON.parse((await client.getBlobLimited('backups/ct4', manifest.config.digest, 1 << 20)).toString('utf8')) as { rootfs: { diff_ids: string[] }; 'org.openvz.backup': { snapshots: Array<{ name: string; created: string }> } };
    const publish = async (tag: string, m: unknown, c: unknown) => {
      const cb = Buffer.from(JSON.stringify(c));
      await client.pushBlob('backups/ct4', sha256(cb), cb);
      const mm = { ...(m as object), config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(cb), size: cb.length } };
      await client.putManifest('backups/ct4', tag, 'application/vnd.oci.image.manifest.v1+json', Buffer.from(JSON.stringify(mm)));
    };
    const nothingCreated = async (ctid: string) => {
      expect(existsSync(join(otherRoot, 'containers', ctid))).toBe(false);
      expect((await readdir(join(otherRoot, 'containers'))).filter((n) => n.startsWith('.') || n === ctid)).toEqual([]);
      expect(existsSync(join(otherRoot, 'pwned'))).toBe(false);
      expect(existsSync(join(otherRoot, 'layers', 'pwned'))).toBe(false);
    };

    // A snapshot layer with a path out of the root.
    const tar = archive(file('../../pwned', 'owned\n'));
    const blob = compress(tar, 'gzip');
    await client.pushBlob('backups/ct4', sha256(blob), blob);
    const evilLayers = [...manifest.layers.slice(0, -1), { mediaType: MEDIA_TYPE.gzip, digest: sha256(blob), size: blob.length }];
    await publish('escape', { ...manifest, layers: evilLayers }, { ...config, rootfs: { type: 'layers', diff_ids: [...config.rootfs.diff_ids.slice(0, -1), sha256(tar)] } });
    const escape = await other.run('restore', `${repo('ct4')}:escape`, '40');
    expect(escape.code).not.toBe(0);
    expect(escape.stderr).toMatch(/\.\./);
    await nothingCreated('40');

    // A config naming layers the manifest does not have.
    await publish('phantom', manifest, { ...config, rootfs: { type: 'layers', diff_ids: [...config.rootfs.diff_ids, sha256('nothing')] } });
    const phantom = await other.run('restore', `${repo('ct4')}:phantom`, '41');
    expect(phantom.code).not.toBe(0);
    expect(phantom.stderr).toContain('not a usable backup');
    await nothingCreated('41');

    // More snapshots than layers.
    const many = { ...config, 'org.openvz.backup': { ...config['org.openvz.backup'], snapshots: Array.from({ length: manifest.layers.length + 1 }, (_, i) => ({ name: `s${i}`, created: '2026-01-01T00:00:00Z' })) } };
    await publish('many', manifest, many);
    const tooMany = await other.run('restore', `${repo('ct4')}:many`, '42');
    expect(tooMany.code).not.toBe(0);
    expect(tooMany.stderr).toContain('snapshots');
    await nothingCreated('42');

    // A diff_id that is not the layer's: refused by the extractor's digest check.
    await publish('wrongdiff', manifest, { ...config, rootfs: { type: 'layers', diff_ids: [...config.rootfs.diff_ids.slice(0, -1), sha256('other')] } });
    const wrong = await other.run('restore', `${repo('ct4')}:wrongdiff`, '43');
    expect(wrong.code).not.toBe(0);
    await nothingCreated('43');

    // The good one still restores.
    await other.ok('restore', `${repo('ct4')}:good`, '44');
    expect((await sh(other, '44', 'cat /root/x /etc/hostname')).stdout).toBe('x\nvictim\n');
    await other.ok('destroy', '44');
    await h.ok('destroy', '4');
  });
});
