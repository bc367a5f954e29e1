// End to end: snapshots of an overlay container, with runc making the changes. A snapshot freezes
// the tree, rollback brings it back exactly (paths, modes, owners, contents, xattrs, deletions),
// deleting a snapshot merges it away without changing a file, a running process refuses them,
// and kill -9 at any moment leaves the container as before or as after, never between.
// Needs root, mmdebstrap (or a warm build cache), runc and overlayfs.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { isRoot, tempDir } from '../helpers/build-env.ts';
import { BASE_NAME, buildTemplates, finishHostTests, host, mountsUnder, pushTemplate, sh as sh0, startHostRegistry, storeView, treeListing, type Host, type HostRegistry } from '../helpers/host-env.ts';
import { readdir } from 'node:fs/promises';

const ready = isRoot && Boolean(findProgram('mmdebstrap')) && Boolean(findProgram('runc'));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!ready)('vztpl snapshot, snapshots, rollback, snapshot delete', () => {
  let work: string;
  let reg: HostRegistry;
  let h: Host;
  let root: string;
  const rootfs = (ctid: string) => join(root, 'containers', ctid, 'rootfs');
  /** The container's tree as the host sees it, mounted first if a kill left it unmounted. */
  const tree = async (ctid: string) => {
    await h.ok('exec', ctid, '--', 'true');
    return treeListing(rootfs(ctid));
  };
  const names = async (ctid: string) => (JSON.parse((await h.ok('snapshots', ctid, '--json')).stdout) as Array<{ name: string }>).map((s) => s.name);
  const sh = (ctid: string, script: string) => h.ok('exec', ctid, '--', '/bin/sh', '-ec', script);

  beforeAll(async () => {
    work = await tempDir('snapshots');
    const { base } = await buildTemplates(work);
    reg = await startHostRegistry(join(work, 'registry'));
    await pushTemplate(base.dir, reg.host, BASE_NAME, '1.0.0');
    root = join(work, 'store');
    h = host(root, reg.host);
    await h.ok('pull', BASE_NAME);
  });

  afterAll(() => finishHostTests(work, reg));

  it('rollback brings a snapshot back exactly; later snapshots and live changes go', async () => {
    await h.ok('create', '1', '--ostemplate', BASE_NAME);
    await sh('1', 'echo one > /root/a; mkdir -p /opt/d/e; echo x > /opt/d/e/x; chown 1000:1000 /opt/d/e/x; chmod 0640 /opt/d/e/x; setfattr -n user.note -v first /root/a || true; ln -s /root/a /root/link; mkfifo /root/fifo');
    const atFirst = await tree('1');
    const first = JSON.parse((await h.ok('snapshot', '1', '--json')).stdout) as { name: string; ms: number };
    expect(first.name).toBe('snap1');
    expect(await tree('1')).toEqual(atFirst);
    // Changes of every kind: rewrite, delete a file, replace a directory, delete a template file, new xattrs, modes.
    await sh('1', 'echo two > /root/a; rm /root/link; rm -rf /opt/d; mkdir /opt/d; echo y > /opt/d/y; rm /etc/motd; chmod 0700 /root; setfattr -n user.note -v second /root/a || true; mkdir /srv/new');
    const atSecond = await tree('1');
    expect(atSecond).not.toEqual(atFirst);
    await h.ok('snapshot', '1', '--name', 'second');
    await sh('1', 'echo three > /root/a; rm -rf /usr/share/doc; dd if=/dev/zero of=/root/big bs=1M count=2 2>/dev/null');
    expect(await names('1')).toEqual(['snap1', 'second']);

    await h.ok('rollback', '1', 'second', '--force');
    expect(await tree('1')).toEqual(atSecond);
    expect(await names('1')).toEqual(['snap1', 'second']);
    const r = await h.ok('rollback', '1', 'snap1', '--force');
    expect(r.stdout).toContain('dropped second');
    expect(await tree('1')).toEqual(atFirst);
    expect(await names('1')).toEqual(['snap1']);
    expect((await sh('1', 'cat /root/a; cat /etc/hostname')).stdout).toBe('one\nct1\n');
    // Nothing the record no longer names is left in the container's directory.
    const dirs = (await readdir(join(root, 'containers', '1'))).filter((n) => n.startsWith('upper') || n.startsWith('merge'));
    expect(dirs).toHaveLength(2);
    await h.ok('destroy', '1');
  });

  it('deleting a snapshot merges it into the one above (or the live changes) without changing a file', async () => {
    await h.ok('create', '2', '--ostemplate', BASE_NAME);
    await sh('2', 'mkdir -p /opt/m/keep /opt/m/gone; echo 1 > /opt/m/keep/f; echo 1 > /opt/m/gone/f; echo 1 > /root/r');
    await h.ok('snapshot', '2', '--name', 'a');
    // Above a: a whiteout of a's file, an opaque directory over a's, a deletion of a template file.
    await sh('2', 'rm -rf /opt/m/gone; rm -rf /opt/m/keep; mkdir /opt/m/keep; echo 2 > /opt/m/keep/g; rm /etc/issue; echo 2 > /root/r');
    await h.ok('snapshot', '2', '--name', 'b');
    await sh('2', 'echo 3 > /root/r; rm -rf /usr/share/man');
    await h.ok('snapshot', '2', '--name', 'c');
    await sh('2', 'echo live > /root/live');
    const before = await tree('2');
    expect((await h.ok('snapshot', 'delete', '2', 'b')).stdout).toContain('merged into c');
    expect(await names('2')).toEqual(['a', 'c']);
    expect(await tree('2')).toEqual(before);
    await h.ok('snapshot', 'delete', '2', 'c');
    expect(await names('2')).toEqual(['a']);
    expect(await tree('2')).toEqual(before);
    await h.ok('snapshot', 'delete', '2', 'a');
    expect(await names('2')).toEqual([]);
    expect(await tree('2')).toEqual(before);
    // Rolling back to a later snapshot still works after merges.
    await h.ok('snapshot', '2', '--name', 'z');
    await sh('2', 'rm /root/live');
    await h.ok('rollback', '2', 'z', '--force');
    expect(await tree('2')).toEqual(before);
    await h.ok('destroy', '2');
  });

  it('bad requests: exit codes and messages; a running process refuses snapshot and rollback', async () => {
    await h.ok('create', '3', '--ostemplate', BASE_NAME);
    await h.ok('snapshot', '3', '--name', 'x');
    expect((await h.run('snapshot', '3', '--name', 'x')).code).toBe(6);
    const bad = await h.run('snapshot', '3', '--name', '../x');
    expect(bad.code).toBe(2);
    const unknown = await h.run('rollback', '3', 'nope', '--force');
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toContain('it has x');
    expect((await h.run('snapshot', 'delete', '3', 'nope')).code).toBe(4);
    expect((await h.run('snapshots', 'nope')).code).toBe(4);
    const noForce = await h.run('rollback', '3', 'x');
    expect(noForce.code).toBe(2);
    expect(noForce.stderr).toContain('--force');
    await h.ok('create', '4', '--ostemplate', BASE_NAME, '--layout', 'copy');
    const copy = await h.run('snapshot', '4');
    expect(copy.code).toBe(2);
    expect(copy.stderr).toContain('overlay layout');
    await h.ok('destroy', '4');

    const running = h.spawn('exec', '3', '--', '/bin/sh', '-c', 'echo started; sleep 60');
    try {
      for (let i = 0; i < 200 && !running.stdout().includes('started'); i++) await sleep(50);
      expect(running.stdout()).toContain('started');
      const refused = await h.run('snapshot', '3');
      expect(refused.code, refused.stderr).toBe(6);
      expect(refused.stderr).toContain('running processes');
      expect((await h.run('rollback', '3', 'x', '--force')).code).toBe(6);
      expect(await names('3')).toEqual(['x']);
    } finally {
      // The container's process itself, through the runtime (killing vztpl exec would orphan it).
      for (const id of (await readdir('/run/runc').catch(() => [] as string[])).filter((n) => n.startsWith('vztpl-3-'))) await sh0('runc', ['kill', id, 'KILL']);
      await running.result;
    }
    await h.ok('destroy', '3');
  });

  it('kill -9 during snapshot, rollback and delete leaves the container as before or as after', async () => {
    await h.ok('create', '5', '--ostemplate', BASE_NAME);
    await sh('5', 'echo base > /root/k');
    await h.ok('snapshot', '5', '--name', 'k0');
    const atK0 = await tree('5');
    const outcomes: Record<string, { before: number; after: number }> = { snapshot: { before: 0, after: 0 }, rollback: { before: 0, after: 0 }, delete: { before: 0, after: 0 } };
    // How long each operation takes, to spread the kills over it and a little past it.
    const timed = async (...args: string[]) => {
      const t0 = performance.now();
      await h.ok(...args);
      return performance.now() - t0;
    };
    const span = { snapshot: await timed('snapshot', '5', '--name', 'probe'), rollback: 0, delete: 0 };
    span.rollback = await timed('rollback', '5', 'probe', '--force');
    span.delete = await timed('snapshot', 'delete', '5', 'probe');
    for (let i = 0; i < 6; i++) {
      const delay = (op: keyof typeof span) => ((i + Math.random()) / 5) * span[op];
      // snapshot
      await sh('5', `echo ${i} > /root/n${i}`);
      const live = await tree('5');
      const before = await names('5');
      let p = h.spawn('snapshot', '5', '--name', `s${i}`);
      await sleep(delay('snapshot'));
      p.child.kill('SIGKILL');
      await p.result;
      const afterSnap = await names('5');
      expect([before, [...before, `s${i}`]]).toContainEqual(afterSnap);
      outcomes.snapshot![afterSnap.length > before.length ? 'after' : 'before']++;
      expect(await tree('5')).toEqual(live);
      if (afterSnap.length === before.length) await h.ok('snapshot', '5', '--name', `s${i}`);

      // delete (merge) the newest snapshot into the live changes
      await sh('5', `echo more > /root/m${i}`);
      const merged = await tree('5');
      p = h.spawn('snapshot', 'delete', '5', `s${i}`);
      await sleep(delay('delete'));
      p.child.kill('SIGKILL');
      await p.result;
      const afterDelete = await names('5');
      expect([before, [...before, `s${i}`]]).toContainEqual(afterDelete);
      outcomes.delete![afterDelete.length === before.length ? 'after' : 'before']++;
      expect(await tree('5')).toEqual(merged);

      // rollback to k0
      p = h.spawn('rollback', '5', 'k0', '--force');
      await sleep(delay('rollback'));
      p.child.kill('SIGKILL');
      await p.result;
      const rolled = await tree('5');
      if (rolled.length === atK0.length && JSON.stringify(rolled) === JSON.stringify(atK0)) {
        outcomes.rollback!.after++;
        expect(await names('5')).toEqual(['k0']);
      } else {
        outcomes.rollback!.before++;
        expect(rolled).toEqual(merged);
        await h.ok('rollback', '5', 'k0', '--force');
      }
      expect(await tree('5')).toEqual(atK0);
    }
    // The next operation sweeps what killed ones left: only the trees the record names stay.
    await h.ok('snapshot', '5', '--name', 'final');
    const dirs = (await readdir(join(root, 'containers', '5'))).filter((n) => /^(upper|merge)/.test(n));
    expect(dirs).toHaveLength(3);
    expect(await names('5')).toEqual(['k0', 'final']);
    console.log(`killed snapshot operations: ${JSON.stringify(outcomes)}`);
    await h.ok('destroy', '5');
    expect((await storeView(root)).containers).toEqual([]);
    expect(await mountsUnder(root)).toEqual([]);
  });
});
