// The step cache shared by concurrent builds: a replaced entry's tree stays whole while another
// build that may have looked it up lives, step.json changes never go to another generation's
// entry, and retired trees go once no other build lives.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StepCache, type CachedLayer } from '../../builder/step-cache.ts';

const meta = (key: string, diffId: string): Omit<CachedLayer, 'tree'> => ({
  key,
  treeKind: 'upper',
  emptyLayer: false,
  diffId: `sha256:${diffId.repeat(64).slice(0, 64)}`,
  blobs: {},
  packages: [],
  history: { created: '2024-01-01T00:00:00Z' },
  seconds: 0,
});
const KEY = 'ab'.repeat(32);
const exists = (p: string) => stat(p).then(() => true, () => false);

/** A tree with one file, in a fresh work dir of the cache. */
async function tree(cache: StepCache, content: string): Promise<string> {
  const dir = join(await cache.workDir(), 'upper');
  await mkdir(dir);
  await writeFile(join(dir, 'file'), content);
  return dir;
}

describe('step cache shared by concurrent builds', () => {
  let root: string;
  let others: ChildProcess[];
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'vztpl-step-cache-'));
    others = [];
  });
  afterEach(async () => {
    for (const c of others) c.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
  });

  /** Another build, alive: a live process with a session dir in tmp/. */
  async function otherBuild(): Promise<() => Promise<void>> {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    others.push(child);
    const session = join(root, 'tmp', `${child.pid}-0123456789ab`);
    await mkdir(session, { recursive: true });
    return async () => {
      await rm(session, { recursive: true, force: true });
      child.kill('SIGKILL');
    };
  }

  it('a replaced tree stays whole while another build lives, and goes with the last build', async () => {
    const reader = new StepCache(root);
    await reader.init();
    const writer = new StepCache(root);
    await writer.init();
    const first = await writer.put(meta(KEY, '1'), await tree(writer, 'one'));
    const looked = (await reader.get(KEY))!;
    expect(looked.tree).toBe(first.tree);

    const second = await writer.put(meta(KEY, '2'), await tree(writer, 'two'), true);
    expect(second.tree).not.toBe(first.tree);
    // The reader's tree is still there, whole, and the entry now names the new one.
    expect(await readFile(join(looked.tree, 'file'), 'utf8')).toBe('one');
    const now = (await new StepCache(root).get(KEY))!;
    expect([now.tree, now.diffId]).toEqual([second.tree, meta(KEY, '2').diffId]);
    expect(await readdir(join(root, 'retired'))).toEqual([`${KEY}~tree`]);

    // The writer finishes: the reader lives, nothing is deleted.
    await writer.close();
    expect(await readFile(join(looked.tree, 'file'), 'utf8')).toBe('one');
    // The reader finishes last: the retired tree goes, the entry's stays.
    await reader.close();
    expect(await exists(looked.tree)).toBe(false);
    expect(await readFile(join(second.tree, 'file'), 'utf8')).toBe('two');
    expect(await readdir(join(root, 'retired'))).toEqual([]);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
  });

  it('a build in another process keeps retired trees; a dead one does not', async () => {
    const cache = new StepCache(root);
    await cache.init();
    const first = await cache.put(meta(KEY, '1'), await tree(cache, 'one'));
    const gone = await otherBuild();
    await cache.put(meta(KEY, '2'), await tree(cache, 'two'), true);
    await cache.close();
    expect(await exists(first.tree)).toBe(true);
    await gone();
    // The next build to start alone sweeps.
    const next = new StepCache(root);
    await next.init();
    expect(await exists(first.tree)).toBe(false);
    expect(await readFile(join((await next.get(KEY))!.tree, 'file'), 'utf8')).toBe('two');
    await next.close();
  });

  it('without replace, the first stored entry is kept and the second tree is dropped', async () => {
    const cache = new StepCache(root);
    await cache.init();
    const first = await cache.put(meta(KEY, '1'), await tree(cache, 'one'));
    const second = await cache.put(meta(KEY, '2'), await tree(cache, 'two'));
    expect([second.tree, second.diffId]).toEqual([first.tree, first.diffId]);
    expect(await readdir(join(root, 'steps', KEY))).toEqual(['step.json', 'tree']);
    await cache.close();
  });

  it('addBlob changes only the generation it was looked up in, and keeps blobs added meanwhile', async () => {
    const cache = new StepCache(root);
    await cache.init();
    const old = await cache.put(meta(KEY, '1'), await tree(cache, 'one'));
    const blob = (c: string) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar+${c}`, digest: `sha256:${'c'.repeat(64)}` as const, size: 1 });
    await cache.addBlob(old, 'gzip', blob('gzip'));
    await cache.addBlob({ ...(await cache.get(KEY))!, blobs: {} }, 'zstd', blob('zstd'));
    const json = () => readFile(join(root, 'steps', KEY, 'step.json'), 'utf8').then((t) => JSON.parse(t) as { diffId: string; blobs: Record<string, unknown>; treeDir?: string });
    expect(Object.keys((await json()).blobs).sort()).toEqual(['gzip', 'zstd']);

    const fresh = await cache.put(meta(KEY, '2'), await tree(cache, 'two'), true);
    await cache.addBlob(old, 'gzip', blob('gzip'));
    const after = await json();
    expect([after.diffId, after.blobs, join(root, 'steps', KEY, after.treeDir!)]).toEqual([fresh.diffId, {}, fresh.tree]);
    expect((await readdir(join(root, 'steps', KEY))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    await cache.close();
  });

  it('clear is refused while another build uses the cache', async () => {
    const cache = new StepCache(root);
    await cache.init();
    await otherBuild();
    await expect(cache.clear()).rejects.toThrow(/in use by another build/);
    await cache.close();
  });
});
