// The errors of cache/extract*.ts carry their kind as data: refusal() picks the class from the
// kind, and SetXattrError has the errno of setfattr's failure as a code.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ArchiveLimitError, LayerExtractError, MalformedArchiveError, refusal, REFUSAL_KINDS, UnsafeArchiveError } from '../../cache/extract-policy.ts';
import { restoreXattrs, SetXattrError, xattrDump } from '../../cache/set-xattrs.ts';
import { findProgram } from '../../common/run.ts';

const LAYER = `sha256:${'a'.repeat(64)}` as const;

describe('refusal kinds', () => {
  it('each kind makes one class of error, with the message it always had', () => {
    const byClass: Record<string, string[]> = {};
    for (const kind of REFUSAL_KINDS) {
      const err = refusal(LAYER, kind, 'etc/x', 'is refused');
      expect(err).toBeInstanceOf(LayerExtractError);
      expect(err.kind).toBe(kind);
      expect(err.message).toBe(`layer ${LAYER}: entry "etc/x" is refused`);
      (byClass[err.name] ??= []).push(kind);
    }
    expect(Object.keys(byClass).sort()).toEqual(['ArchiveLimitError', 'LayerExtractError', 'MalformedArchiveError', 'UnsafeArchiveError']);
    expect(refusal(LAYER, 'path-dot-dot', 'a', 'r')).toBeInstanceOf(UnsafeArchiveError);
    expect(refusal(LAYER, 'path-too-long', 'a', 'r')).toBeInstanceOf(ArchiveLimitError);
    expect(refusal(LAYER, 'hardlink-path-too-long', 'a', 'r')).toBeInstanceOf(UnsafeArchiveError);
    expect(refusal(LAYER, 'truncated', 'a', 'r')).toBeInstanceOf(MalformedArchiveError);
    expect(byClass.LayerExtractError?.sort()).toEqual(['blob-size', 'target-exists']);
  });
});

describe.skipIf(!findProgram('setfattr'))('SetXattrError', () => {
  it('has the errno of the failure, from the text after the path the archive named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vztpl-setxattr-'));
    try {
      // A missing file whose name is another error's text: the code is still ENOENT.
      const name = 'No space left on device';
      const err = (() => {
        try {
          restoreXattrs(dir, xattrDump([[name, new Map([['user.a', Buffer.from('1')]])]]));
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(SetXattrError);
      expect(err).toMatchObject({ code: 'ENOENT', path: name });
      expect((err as Error).message).toContain('No such file or directory');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
