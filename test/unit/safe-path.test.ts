// cache/safe-path.ts: every refusal of a name says its kind as data, with the reason people read.
import { describe, expect, it } from 'vitest';
import { classifyWhiteout, hardlinkTarget, pathProblem, symlinkProblem, xattrProblem } from '../../cache/safe-path.ts';

const limits = { maxPathLength: 20, maxComponentLength: 8 };

describe('safe-path', () => {
  it('entry paths', () => {
    expect(pathProblem('etc/passwd', limits)).toBeUndefined();
    const cases: [string, string, RegExp][] = [
      ['a\0b', 'path-nul-byte', /NUL byte/],
      ['/etc', 'path-absolute', /absolute/],
      ['a/../b', 'path-dot-dot', /"\.\." component/],
      ['abcdefgh/abcdefgh/abc', 'path-too-long', /longer than 20 bytes/],
      ['a//b', 'path-empty-component', /empty path component/],
      ['a/./b', 'path-dot-component', /"\." path component/],
      ['abcdefghi', 'path-component-too-long', /component longer than 8 bytes/],
    ];
    for (const [path, kind, reason] of cases) {
      const p = pathProblem(path, limits);
      expect(p?.kind, path).toBe(kind);
      expect(p?.reason, path).toMatch(reason);
    }
  });

  it('hard-link targets: normalized, or refused with the path problem in the kind', () => {
    expect(hardlinkTarget('./././a/b', limits)).toEqual({ target: 'a/b' });
    const kinds = ['/etc/shadow', './', '.', '../x', 'a//b', 'abcdefghi', 'a\0b'].map((l) => {
      const t = hardlinkTarget(l, limits);
      return 'problem' in t ? t.problem.kind : undefined;
    });
    expect(kinds).toEqual(['hardlink-absolute', 'hardlink-no-target', 'hardlink-no-target', 'hardlink-path-dot-dot', 'hardlink-path-empty-component', 'hardlink-path-component-too-long', 'hardlink-path-nul-byte']);
    const t = hardlinkTarget('../x', limits);
    expect('problem' in t && t.problem.reason).toBe('is a hard link whose target "../x" has a ".." component');
  });

  it('symlink targets (stored, never followed: only their form)', () => {
    expect(symlinkProblem('../../anywhere', limits)).toBeUndefined();
    expect(symlinkProblem('', limits)?.kind).toBe('symlink-empty-target');
    expect(symlinkProblem('a\0b', limits)?.kind).toBe('symlink-nul-byte');
    expect(symlinkProblem('x'.repeat(20), limits)).toEqual({ kind: 'symlink-too-long', reason: 'is a symlink whose target is longer than 19 bytes' });
  });

  it('whiteout names', () => {
    expect(classifyWhiteout('file')).toEqual({ kind: 'none' });
    expect(classifyWhiteout('.wh..wh..opq')).toEqual({ kind: 'opaque' });
    expect(classifyWhiteout('.wh.gone')).toEqual({ kind: 'whiteout', name: 'gone' });
    const invalid = (base: string) => {
      const w = classifyWhiteout(base);
      return w.kind === 'invalid' ? w.problem.kind : undefined;
    };
    expect(['.wh..wh.plnk', '.wh.', '.wh..', '.wh...'].map(invalid)).toEqual(['whiteout-aufs-metadata', 'whiteout-no-name', 'whiteout-dot', 'whiteout-dot']);
  });

  it('extended attributes: the kind, not the text, tells a limit from a forbidden name', () => {
    expect(xattrProblem('security.capability', Buffer.alloc(20))).toBeUndefined();
    expect(xattrProblem('system.posix_acl_access', Buffer.alloc(28))).toBeUndefined();
    expect(xattrProblem('trusted.overlay.opaque', Buffer.from('y'))?.kind).toBe('xattr-overlay');
    expect(xattrProblem('user.overlay.bytes', Buffer.from('y'))?.kind).toBe('xattr-overlay');
    expect(xattrProblem('foo.bytes', Buffer.from('1'))?.kind).toBe('xattr-name-not-allowed');
    expect(xattrProblem('user.a=b', Buffer.from('1'))?.kind).toBe('xattr-name-not-allowed');
    expect(xattrProblem(`user.${'a'.repeat(251)}`, Buffer.from('1'))?.kind).toBe('xattr-name-too-long');
    expect(xattrProblem('user.big', Buffer.alloc(65537))).toEqual({ kind: 'xattr-value-too-large', reason: 'has an extended attribute user.big of 65537 bytes (at most 65536)' });
  });
});
