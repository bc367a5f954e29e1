// Host-local locks (common/lock.ts): a second acquisition by the holder fails at once, owners that
// are gone (dead, another boot, a reused pid, a crash before the owner was written) are taken
// over, a live owner is waited for only until the deadline, and processes contending for a stale
// lock hold it one at a time.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquire, LockError, lockExclusive } from '../../common/lock.ts';
import { processIdentity } from '../../common/pids.ts';

const LOCK_MODULE = fileURLToPath(new URL('../../common/lock.ts', import.meta.url));

/** A pid that is certainly gone: a child that has exited and been reaped. */
function deadPid(): number {
  return spawnSync('/bin/true').pid!;
}

describe('common/lock', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vztpl-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the owner with the lock, and releases it', async () => {
    const path = join(dir, 'a');
    const lock = await lockExclusive(path);
    expect(readFileSync(path, 'utf8').trim()).toBe(processIdentity());
    expect(processIdentity().split(' ')[0]).toBe(String(process.pid));
    lock.release();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a second acquisition by the holder fails at once, naming the lock (also through a relative path)', async () => {
    const path = join(dir, 'ct-73');
    const lock = await lockExclusive(path);
    const started = Date.now();
    const err = await lockExclusive(path, { timeoutMs: 30_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockError);
    expect((err as LockError).kind).toBe('held-by-self');
    expect((err as LockError).path).toBe(path);
    expect((err as Error).message).toContain(path);
    const cwd = process.cwd();
    process.chdir(dirname(dir));
    try {
      const viaRelative = await lockExclusive(join(basename(dir), 'ct-73'), { timeoutMs: 30_000 }).catch((e: unknown) => e);
      expect((viaRelative as LockError).kind).toBe('held-by-self');
    } finally {
      process.chdir(cwd);
    }
    expect(Date.now() - started).toBeLessThan(1000);
    lock.release();
    (await lockExclusive(path)).release();
  });

  it('a lock file naming this process that this process does not hold is also refused at once', async () => {
    const path = join(dir, 'mine');
    writeFileSync(path, `${processIdentity()}\n`);
    const err = await lockExclusive(path, { timeoutMs: 30_000 }).catch((e: unknown) => e);
    expect((err as LockError).kind).toBe('held-by-self');
  });

  it.each([
    ['a dead process (pid only, as older versions wrote)', () => `${deadPid()}\n`],
    ['a dead process', () => `${deadPid()} ${processIdentity().split(' ')[1]} 12345\n`],
    ['another boot', () => `${process.pid} 00000000-0000-0000-0000-000000000000 ${processIdentity().split(' ')[2]}\n`],
    ['a reused pid (same pid, other start time)', () => `${process.ppid} ${processIdentity().split(' ')[1]} 1\n`],
  ])('a lock owned by %s is taken over', async (_what, owner) => {
    const path = join(dir, 'stale');
    writeFileSync(path, owner());
    const lock = await lockExclusive(path, { timeoutMs: 2000 });
    expect(readFileSync(path, 'utf8').trim()).toBe(processIdentity());
    lock.release();
  });

  it('a lock without an owner (a crash between create and write) is taken over once it is old, waited for while fresh', async () => {
    const path = join(dir, 'empty');
    writeFileSync(path, '');
    const old = new Date(Date.now() - 60_000);
    utimesSync(path, old, old);
    (await lockExclusive(path, { timeoutMs: 1000 })).release();

    writeFileSync(path, '');
    const started = Date.now();
    const lock = await lockExclusive(path, { timeoutMs: 10_000 });
    // Fresh: not taken over before the grace period.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    lock.release();
  });

  it('a live owner is waited for until the deadline; the error names the lock and the owner', async () => {
    const path = join(dir, 'busy');
    const holder = spawn('sleep', ['30']);
    try {
      const stat = readFileSync(`/proc/${holder.pid}/stat`, 'utf8');
      const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      writeFileSync(path, `${holder.pid} ${processIdentity().split(' ')[1]} ${start}\n`);
      const started = Date.now();
      const err = await lockExclusive(path, { timeoutMs: 500 }).catch((e: unknown) => e);
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      expect(Date.now() - started).toBeLessThan(5000);
      expect((err as LockError).kind).toBe('timeout');
      expect((err as Error).message).toContain(path);
      expect((err as Error).message).toContain(`process ${holder.pid}`);
      // The lock is left to its owner.
      expect(readFileSync(path, 'utf8').split(' ')[0]).toBe(String(holder.pid));
    } finally {
      holder.kill('SIGKILL');
    }
    // Once the owner is gone, it is taken over.
    await new Promise((r) => holder.once('exit', r));
    (await lockExclusive(path, { timeoutMs: 2000 })).release();
  });

  it('VZTPL_LOCK_WAIT sets the default wait', async () => {
    const path = join(dir, 'env');
    const holder = spawn('sleep', ['30']);
    try {
      const stat = readFileSync(`/proc/${holder.pid}/stat`, 'utf8');
      writeFileSync(path, `${holder.pid} ${processIdentity().split(' ')[1]} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}\n`);
      process.env.VZTPL_LOCK_WAIT = '0.3';
      const started = Date.now();
      const err = await acquire(path).catch((e: unknown) => e);
      expect((err as LockError).kind).toBe('timeout');
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      delete process.env.VZTPL_LOCK_WAIT;
      holder.kill('SIGKILL');
    }
  });

  it('processes contending for a lock left by a dead owner hold it one at a time', async () => {
    const path = join(dir, 'contended');
    const journal = join(dir, 'journal');
    writeFileSync(journal, '');
    writeFileSync(path, `${deadPid()}\n`);
    const script = `
      import { appendFileSync } from 'node:fs';
      import { lockExclusive } from ${JSON.stringify(LOCK_MODULE)};
      for (let i = 0; i < 5; i++) {
        const lock = await lockExclusive(${JSON.stringify(path)}, { timeoutMs: 60000 });
        appendFileSync(${JSON.stringify(journal)}, 'enter ' + process.pid + '\\n');
        await new Promise((r) => setTimeout(r, 2));
        appendFileSync(${JSON.stringify(journal)}, 'leave ' + process.pid + '\\n');
        lock.release();
      }`;
    const children = Array.from({ length: 6 }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] }));
    const codes = await Promise.all(children.map((c) => new Promise<number | null>((r) => c.once('exit', r))));
    expect(codes).toEqual(children.map(() => 0));
    const lines = readFileSync(journal, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(6 * 5 * 2);
    for (let i = 0; i < lines.length; i += 2) {
      const [enter, leave] = [lines[i]!.split(' '), lines[i + 1]!.split(' ')];
      expect(enter[0]).toBe('enter');
      expect(leave).toEqual(['leave', enter[1]]);
    }
    expect(readdirSync(dir).sort()).toEqual(['journal']);
  });
});
