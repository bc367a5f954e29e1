// The host store's bookkeeping (cache/store.ts) without a registry: refs round-trip, lastUsed
// follows a create's touch (the ref file's mtime) so pruning drops the least recently used
// first, and a layer counts as present exactly when its info file exists.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store, type TemplateRef } from '../../cache/store.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'vztpl-store-test-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const digest = (c: string) => `sha256:${c.repeat(64)}` as const;
const ref = (name: string, version: string, when: string): TemplateRef => ({
  source: 'http://127.0.0.1:5000',
  name,
  version,
  manifestDigest: digest('a'),
  configDigest: digest('b'),
  layers: [{ digest: digest('c'), diffId: digest('d'), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', size: 1 }],
  env: [],
  cmd: ['/bin/sh'],
  architecture: 'amd64',
  pulledAt: when,
  lastUsed: when,
});

describe('Store', () => {
  it('saves and lists refs; a touch moves lastUsed, and only forward', async () => {
    const store = new Store(join(root, 'refs-case'));
    await store.init();
    const old = ref('debian-12', '1.0.0', '2026-01-01T00:00:00.000Z');
    const newer = ref('debian-11', '2.0.0', '2026-01-02T00:00:00.000Z');
    await store.saveRef(old);
    await store.saveRef(newer);
    // Files written just now carry today's mtime: backdate them to their recorded use.
    await store.touchRef(old, new Date(old.lastUsed));
    await store.touchRef(newer, new Date(newer.lastUsed));
    const byUse = async () => (await store.refs()).sort((a, b) => a.lastUsed.localeCompare(b.lastUsed)).map((r) => `${r.name}:${r.version}`);
    expect(await byUse()).toEqual(['debian-12:1.0.0', 'debian-11:2.0.0']);
    expect((await store.refs()).find((r) => r.name === 'debian-12')).toEqual(old);

    const now = new Date();
    await store.touchRef(old, now);
    expect(await byUse()).toEqual(['debian-11:2.0.0', 'debian-12:1.0.0']);
    expect((await store.refs()).find((r) => r.name === 'debian-12')!.lastUsed).toBe(now.toISOString());
    // An mtime older than the recorded lastUsed does not take it back.
    await store.touchRef(newer, new Date('2025-06-01T00:00:00.000Z'));
    expect((await store.refs()).find((r) => r.name === 'debian-11')!.lastUsed).toBe(newer.lastUsed);

    await store.removeRef(old);
    expect((await store.refs()).map((r) => r.name)).toEqual(['debian-11']);
  });

  it('a layer is present exactly when its info file is', async () => {
    const store = new Store(join(root, 'layer-case'));
    await store.init();
    expect(await store.hasLayer(digest('e'))).toBe(false);
    expect(await store.layerInfo(digest('e'))).toBeUndefined();
    await writeFile(store.layerInfoPath(digest('e')), JSON.stringify({ diffId: digest('e'), bytes: 10, entries: 2 }));
    expect(await store.hasLayer(digest('e'))).toBe(true);
    expect(await store.layerInfo(digest('e'))).toEqual({ diffId: digest('e'), bytes: 10, entries: 2 });
  });
});
