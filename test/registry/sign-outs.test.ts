// Signed-out web sessions (registry/auth/sign-outs.ts) on one fs storage shared by two
// instances: a sign-out through one is seen by the other, groups whose tokens expired are
// removed by the next sign-out, and a token without a usable id never passes.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignOuts } from '../../registry/auth/sign-outs.ts';
import { FsDriver } from '../../registry/storage/fs.ts';

describe('signed-out web sessions', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'vztpl-sign-outs-'));
  });
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('a sign-out through one instance holds on another until the token expires; expired groups go at the next sign-out', async () => {
    const one = new SignOuts(new FsDriver({ root }));
    const two = new SignOuts(new FsDriver({ root }));
    const now = 1_900_000_000;
    const early = { jti: 'AAAAAAAAAAAAAAAA', exp: now + 10 };
    const late = { jti: 'BBBBBBBBBBBBBBBB', exp: now + 300 };
    expect(await two.isSignedOut(early, now)).toBe(false);
    await one.signOut(early, now);
    expect(await two.isSignedOut(early, now)).toBe(true);
    expect(await two.isSignedOut(late, now)).toBe(false);
    const groups = () => readdir(join(root, 'v2/_auth/signed-out')).catch(() => [] as string[]);
    expect(await groups()).toEqual([String(early.exp)]);
    // after the early token expired, the next sign-out removes its group
    await two.signOut(late, now + 20);
    expect(await groups()).toEqual([String(late.exp)]);
    expect(await one.isSignedOut(late, now + 20)).toBe(true);
  });

  it('a token without a usable id or expiry counts as signed out, and is never written', async () => {
    const outs = new SignOuts(new FsDriver({ root }));
    for (const claims of [{ jti: '../../x', exp: 2_000_000_000 }, { jti: '', exp: 2_000_000_000 }, { jti: 'CCCCCCCCCCCCCCCC', exp: 1.5 }]) {
      await outs.signOut(claims);
      expect(await outs.isSignedOut(claims)).toBe(true);
    }
    expect((await readdir(join(root, 'v2/_auth/signed-out'))).every((g) => /^\d+$/.test(g))).toBe(true);
  });
});
