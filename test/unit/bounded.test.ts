// common/bounded.ts: the bound on calls in flight, results in order, and what the first failure does.
import { describe, expect, it } from 'vitest';
import { mapBounded } from '../../common/bounded.ts';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('mapBounded', () => {
  it('keeps at most `limit` calls in flight and returns the results in the items order', async () => {
    let running = 0;
    let most = 0;
    const out = await mapBounded([5, 1, 4, 2, 3, 0], 2, async (n) => {
      most = Math.max(most, ++running);
      await tick(n * 3);
      running--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30, 0]);
    expect(most).toBe(2);
    expect(await mapBounded([], 3, async () => 1)).toEqual([]);
  });

  it('the first failure stops the rest: no new call, the others told to stop, its error thrown once they settled', async () => {
    const started: number[] = [];
    const settled: number[] = [];
    const boom = new Error('item 1 failed');
    const run = mapBounded([0, 1, 2, 3, 4], 2, async (n, stop) => {
      started.push(n);
      try {
        if (n === 1) {
          await tick(5);
          throw boom;
        }
        // A long call that stops when told to, failing with the reason it was given.
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, 5_000);
          stop.addEventListener('abort', () => {
            clearTimeout(t);
            reject(new Error('stopped'));
          });
        });
      } finally {
        await tick(10); // cleaning up
        settled.push(n);
      }
    });
    await expect(run).rejects.toBe(boom);
    expect(started).toEqual([0, 1]);
    expect(settled.sort()).toEqual([0, 1]);
  });
});
