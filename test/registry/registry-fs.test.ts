// The registry end-to-end suite on the fs driver: a temp directory that two registry instances
// (two FsDriver instances) share.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsDriver } from '../../registry/storage/fs.ts';
import { registrySuite } from './registry-suite.ts';

registrySuite('fs', async () => {
  const root = await mkdtemp(join(tmpdir(), 'vztpl-registry-fs-'));
  return {
    driver: () => new FsDriver({ root }),
    // temp files of writers and deletes in flight or abandoned
    leftovers: async () => (await readdir(join(root, '.~tmp')).catch(() => [] as string[])).map((n) => `.~tmp/${n}`),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});
