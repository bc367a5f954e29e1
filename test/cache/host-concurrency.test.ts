// End to end: the host cache under concurrency and crashes, against a vztpl registry that counts
// blob requests and can slow its blob reads (test/helpers/host-env.ts). Four pulls and four creates
// of one uncached template at once fetch each layer once; a pull killed with SIGKILL mid-layer
// never leaves a partial layer where creates look, and the next pull sweeps its leftovers and
// completes; a pull waiting on a killed puller's layer lock takes the work over; a prune while a
// pull is half done leaves what the pull fetched (cache/holds.ts).
// Needs root, mmdebstrap (or a warm build cache), runc and overlayfs.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { isRoot, tempDir, waitForEvent } from '../helpers/build-env.ts';
import {
  BASE_NAME,
  buildTemplates,
  finishHostTests,
  hexOf,
  host,
  layersChecksum,
  layersConsistent,
  mountsUnder,
  pullEvents,
  pushTemplate,
  startHostRegistry,
  storeView,
  type BuiltTemplate,
  type HostRegistry,
  type StoreView,
} from '../helpers/host-env.ts';

const ready = isRoot && Boolean(findProgram('mmdebstrap')) && Boolean(findProgram('runc') ?? findProgram('crun'));

/** Samples a store every few ms while something runs, collecting what must never be seen. */
function watchStore(root: string, bigHex: string) {
  const problems = new Set<string>();
  const temps = new Set<string>();
  let samples = 0;
  let stopped = false;
  const check = (v: StoreView) => {
    samples++;
    for (const p of layersConsistent(v)) {
      // A dir is renamed into place just before its info file is written: only the reverse is wrong,
      // and the big layer's dir must never appear without its info while the pull runs.
      if (p.startsWith('info file') || p.includes(bigHex)) problems.add(p);
    }
    for (const t of v.layerOthers) temps.add(t);
    if (v.refs.length && !v.layerInfos.includes(`${bigHex}.json`)) problems.add(`a ref before the layer ${bigHex} was complete`);
  };
  const loop = (async () => {
    while (!stopped) {
      check(await storeView(root));
      await new Promise((r) => setTimeout(r, 15));
    }
  })();
  return {
    problems,
    temps,
    samples: () => samples,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

describe.skipIf(!ready)('vztpl host cache: concurrent pulls and creates, killed pulls', () => {
  let work: string;
  let reg: HostRegistry;
  let base: BuiltTemplate;
  /** The base's bootstrap layer: tens of MB, the one a kill interrupts. */
  let big: { digest: string; diffId: string; size: number };
  let concurrentRoot: string;

  beforeAll(async () => {
    work = await tempDir('host-concurrency');
    ({ base } = await buildTemplates(work));
    reg = await startHostRegistry(join(work, 'registry'));
    await pushTemplate(base.dir, reg.host, BASE_NAME, '1.0.0');
    const i = base.layers.reduce((best, l, j) => (l.size > base.layers[best]!.size ? j : best), 0);
    big = { digest: base.layers[i]!.digest, diffId: base.diffIds[i]!, size: base.layers[i]!.size };
    expect(big.size).toBeGreaterThan(10e6);
  });

  afterAll(() => finishHostTests(work, reg));

  it('four pulls and four creates of one uncached template at once: each layer downloaded once, all correct', async () => {
    concurrentRoot = join(work, 'store-concurrent');
    const c = host(concurrentRoot, reg.host);
    // Slow enough that all eight processes are at work during the download.
    reg.throttle.bytesPerSecond = 12 << 20;
    const from = reg.requests.length;
    const ctids = ['c1', 'c2', 'c3', 'c4'];
    const t0 = performance.now();
    const procs = [...[1, 2, 3, 4].map(() => c.spawn('pull', `${BASE_NAME}@^1`, '--json')), ...ctids.map((id) => c.spawn('create', id, '--ostemplate', BASE_NAME, '--json'))];
    const results = await Promise.all(procs.map((p) => p.result));
    reg.throttle.bytesPerSecond = undefined;
    console.log(`host-concurrency: 4 pulls + 4 creates in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (const r of results) expect(r.code, r.stderr).toBe(0);

    // The registry served every layer blob once.
    for (const l of base.layers) expect(reg.blobGets(l.digest, from), `GETs of ${l.digest}`).toBe(1);
    // Across the eight processes: one layer-start per layer, the bytes counted once.
    const events = results.flatMap(pullEvents);
    for (const l of base.layers) expect(events.filter((e) => e.event === 'layer-start' && e.digest === l.digest)).toHaveLength(1);
    const downloaded = events.filter((e) => e.event === 'pulled').reduce((n, e) => n + (e.downloaded as number), 0);
    expect(downloaded).toBe(base.layers.reduce((n, l) => n + l.size, 0));

    const view = await storeView(concurrentRoot);
    expect(view.refs).toEqual([`127.0.0.1_${reg.port}/${BASE_NAME}/1.0.0.json`]);
    expect(view.layerDirs).toEqual(base.diffIds.map(hexOf).sort());
    expect(layersConsistent(view)).toEqual([]);
    expect(view.layerOthers).toEqual([]);
    expect(view.tmp).toEqual([]);
    expect(view.locks).toEqual([]);
    expect(view.containers).toEqual(ctids);

    const ids = new Set<string>();
    for (const id of ctids) {
      const out = await c.ok('exec', id, '--', '/bin/sh', '-c', 'hostname; cat /etc/machine-id /opt/vzt-host/base; . /etc/os-release; echo $VERSION_CODENAME');
      const [name, machineId, mark, codename] = out.stdout.trim().split('\n');
      expect([name, mark, codename]).toEqual([`ct${id}`, 'base', 'bookworm']);
      expect(machineId).toMatch(/^[0-9a-f]{32}$/);
      ids.add(machineId!);
    }
    expect(ids.size).toBe(4);
    const list = JSON.parse((await c.ok('list', '--json')).stdout) as Array<Record<string, any>>;
    expect(list.map((x) => [x.ctid, x.mounted, x.template.manifestDigest])).toEqual(ctids.map((id) => [id, true, base.manifestDigest]));
    for (const id of ctids) await c.ok('destroy', id);
    expect(await mountsUnder(concurrentRoot)).toEqual([]);
  });

  it('kill -9 during a pull: no partial layer is ever visible; the next pull sweeps the leftovers and completes', async () => {
    const root = join(work, 'store-killed');
    const k = host(root, reg.host);
    const bigHex = hexOf(big.diffId);
    reg.throttle.bytesPerSecond = 3 << 20; // the big layer takes ~10 s: a kill lands mid-layer
    const watcher = watchStore(root, bigHex);
    const p = k.spawn('pull', BASE_NAME, '--json');
    try {
      await waitForEvent(p.stdout, (e) => (e as Record<string, unknown>).event === 'layer-progress' && (e as Record<string, unknown>).digest === big.digest, 120_000, p.result);
    } finally {
      p.child.kill('SIGKILL');
    }
    const killed = await p.result;
    await watcher.stop();
    expect(killed.signal).toBe('SIGKILL');
    const pid = p.child.pid!;
    expect(watcher.samples()).toBeGreaterThan(5);
    expect([...watcher.problems]).toEqual([]);

    // What the kill left: work in progress under names no reader takes for a layer.
    const after = await storeView(root);
    expect(after.refs).toEqual([]);
    expect(after.layerDirs).not.toContain(bigHex);
    expect(after.layerInfos).not.toContain(`${bigHex}.json`);
    expect(layersConsistent(after)).toEqual([]);
    expect(after.layerOthers.some((n) => n.startsWith(`${bigHex}.tmp-${pid}-`)), `extraction temp in ${after.layerOthers.join(', ')}`).toBe(true);
    expect(after.tmp.some((n) => n.startsWith(`blob-${pid}-`)), `blob temp in ${after.tmp.join(', ')}`).toBe(true);
    expect(after.locks).toContain(`layer-${bigHex}`);
    expect((await readFile(join(root, 'locks', `layer-${bigHex}`), 'utf8')).split(' ')[0]).toBe(String(pid));
    // The watcher saw the extraction happen apart from the layer's name.
    expect([...watcher.temps].some((n) => n.startsWith(`${bigHex}.tmp-`))).toBe(true);

    // A create cannot use any of it: with the registry down it has nothing to create from.
    await reg.stop();
    const offline = await k.run('create', 'k0', '--ostemplate', BASE_NAME);
    expect(offline.code, offline.stderr).toBe(5);
    expect((await storeView(root)).containers).toEqual([]);
    await reg.start();

    reg.throttle.bytesPerSecond = undefined;
    const from = reg.requests.length;
    const again = pullEvents(await k.ok('pull', BASE_NAME, '--json'));
    const missing = base.layers.filter((l, i) => !after.layerInfos.includes(`${hexOf(base.diffIds[i]!)}.json`));
    expect(again.find((e) => e.event === 'resolved')).toMatchObject({ missing: missing.length });
    expect(reg.blobGets(big.digest, from)).toBe(1);
    const view = await storeView(root);
    expect(view.refs).toHaveLength(1);
    expect(view.layerDirs).toEqual(base.diffIds.map(hexOf).sort());
    expect(layersConsistent(view)).toEqual([]);
    // The dead process's leftovers are swept.
    expect(view.layerOthers).toEqual([]);
    expect(view.tmp).toEqual([]);
    expect(view.locks).toEqual([]);
    // The layers are whole: the same trees as in the store the concurrent pulls filled.
    expect(layersChecksum(root)).toBe(layersChecksum(concurrentRoot));
    for (const i of view.layerInfos) expect(await readFile(join(root, 'layers', 'sha256', i), 'utf8')).toBe(await readFile(join(concurrentRoot, 'layers', 'sha256', i), 'utf8'));

    await k.ok('create', 'k1', '--ostemplate', BASE_NAME);
    expect((await k.ok('exec', 'k1', '--', 'cat', '/opt/vzt-host/base')).stdout).toBe('base\n');
    await k.ok('destroy', 'k1');
  });

  it("a pull waiting on a killed puller's layer lock takes the work over", async () => {
    const root = join(work, 'store-takeover');
    const t = host(root, reg.host);
    reg.throttle.bytesPerSecond = 4 << 20;
    const first = t.spawn('pull', BASE_NAME, '--json');
    let second: ReturnType<typeof t.spawn> | undefined;
    try {
      await waitForEvent(first.stdout, (e) => (e as Record<string, unknown>).event === 'layer-progress' && (e as Record<string, unknown>).digest === big.digest, 120_000, first.result);
      second = t.spawn('pull', BASE_NAME, '--json');
      // The second has resolved and is waiting on the layer's lock.
      await waitForEvent(second.stdout, (e) => (e as Record<string, unknown>).event === 'resolved', 60_000, second.result);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      first.child.kill('SIGKILL');
    }
    expect((await first.result).signal).toBe('SIGKILL');
    reg.throttle.bytesPerSecond = undefined;
    const r = await second!.result;
    expect(r.code, r.stderr).toBe(0);
    const events = pullEvents(r);
    expect(events.find((e) => e.event === 'layer-done' && e.digest === big.digest)).toMatchObject({ shared: false });
    const view = await storeView(root);
    expect(view.layerDirs).toEqual(base.diffIds.map(hexOf).sort());
    expect(layersConsistent(view)).toEqual([]);
    // The killed puller's temporaries and its hold (it died after the second swept at its start)
    // are all that is left over, and the next pull sweeps them.
    const dead = first.child.pid!;
    expect(view.locks).toEqual([`hold-${dead}-1`]);
    for (const n of [...view.tmp, ...view.layerOthers]) expect(n).toMatch(new RegExp(`(^blob-|\\.tmp-)${dead}-`));
    await t.ok('pull', BASE_NAME);
    const swept = await storeView(root);
    expect(swept.tmp).toEqual([]);
    expect(swept.layerOthers).toEqual([]);
    expect(swept.locks).toEqual([]);
    expect(layersChecksum(root)).toBe(layersChecksum(concurrentRoot));
  });

  it('cache prune while a pull is half done removes nothing it fetched; the pull completes whole', async () => {
    const root = join(work, 'store-prune');
    const h = host(root, reg.host);
    reg.throttle.bytesPerSecond = 4 << 20; // the big layer takes seconds, the small ones are done
    const p = h.spawn('pull', BASE_NAME, '--json');
    const smallDone = (e: Record<string, unknown>) => e.event === 'layer-done' && e.shared === false && e.digest !== big.digest;
    let pruned: { removedTemplates: string[]; removedLayers: string[]; removedBlobs: string[] };
    let midway: StoreView;
    try {
      await waitForEvent(p.stdout, (e) => smallDone(e as Record<string, unknown>), 120_000, p.result);
      await waitForEvent(p.stdout, (e) => (e as Record<string, unknown>).event === 'layer-progress' && (e as Record<string, unknown>).digest === big.digest, 120_000, p.result);
      // Extracted layers that no reference names yet: what a prune without holds would take.
      midway = await storeView(root);
      expect(midway.refs).toEqual([]);
      expect(midway.layerInfos.length).toBeGreaterThan(0);
      pruned = JSON.parse((await h.ok('cache', 'prune', '--max-size', '0', '--json')).stdout);
    } finally {
      reg.throttle.bytesPerSecond = undefined;
    }
    expect(pruned.removedLayers).toEqual([]);
    expect(pruned.removedBlobs).toEqual([]);
    const r = await p.result;
    expect(r.code, r.stderr).toBe(0);
    // Nothing was fetched twice: the layers extracted before the prune were kept.
    expect(pullEvents(r).filter((e) => e.event === 'layer-start')).toHaveLength(base.layers.length);
    const view = await storeView(root);
    expect(view.refs).toHaveLength(1);
    expect(view.layerDirs).toEqual(base.diffIds.map(hexOf).sort());
    expect(layersConsistent(view)).toEqual([]);
    expect(view.locks).toEqual([]);
    expect(layersChecksum(root)).toBe(layersChecksum(concurrentRoot));
    await h.ok('create', 'pr1', '--ostemplate', BASE_NAME);
    expect((await h.ok('exec', 'pr1', '--', 'cat', '/opt/vzt-host/base')).stdout).toBe('base\n');
    await h.ok('destroy', 'pr1');
    // With the pull done and no container, the template is the prune's to take.
    const after = JSON.parse((await h.ok('cache', 'prune', '--max-size', '0', '--json')).stdout) as typeof pruned;
    expect(after.removedLayers.sort()).toEqual([...base.diffIds].sort());
    expect((await storeView(root)).layerDirs).toEqual([]);
  });
});
