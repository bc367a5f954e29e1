// Vitest global setup: one S3 server (a throwaway Ceph RGW, test/services/rgw.ts) for the whole
// run, shared by every test file that calls s3TestEnv() (test/services/s3-env.ts). It is started
// only when the Ceph programs are installed and some test file of this run needs it, and it is
// stopped at teardown. Tests receive it through provide/inject ('vztplS3'); the same values are
// put in VZTPL_TEST_S3_* environment variables for programs the tests spawn.
//
// VZTPL_TEST_S3_ENDPOINT (+ _ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _REGION) instead points the tests at a
// server of your own (MinIO, AWS); VZTPL_TEST_RGW=0 starts nothing.
import { readFile } from 'node:fs/promises';
import type { TestProject } from 'vitest/node';
import { missingCephBinaries, startRgw, type RgwHandle } from './services/rgw.ts';
import type { S3TestInfo } from './services/s3-env.ts';

const MARKER = 's3TestEnv(';

/** Whether a test file of this run calls s3TestEnv(). */
async function runNeedsS3(project: TestProject): Promise<boolean> {
  // The CLI's file filters (vitest run <filter>): not in the public API, so read defensively
  // and fall back to every test file of the project.
  const pattern = (project.vitest as unknown as { filenamePattern?: unknown }).filenamePattern;
  const filters = Array.isArray(pattern) && pattern.every((p) => typeof p === 'string') ? (pattern as string[]) : undefined;
  const { testFiles } = await project.globTestFiles(filters);
  for (const f of testFiles) {
    const text = await readFile(f, 'utf8').catch(() => '');
    if (text.includes(MARKER)) return true;
  }
  return false;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let handle: RgwHandle | undefined;
  let info: S3TestInfo;
  const env = process.env;
  if (env.VZTPL_TEST_S3_ENDPOINT) {
    info = {
      available: true,
      endpoint: env.VZTPL_TEST_S3_ENDPOINT,
      accessKeyId: env.VZTPL_TEST_S3_ACCESS_KEY_ID ?? env.AWS_ACCESS_KEY_ID ?? '',
      secretAccessKey: env.VZTPL_TEST_S3_SECRET_ACCESS_KEY ?? env.AWS_SECRET_ACCESS_KEY ?? '',
      region: env.VZTPL_TEST_S3_REGION ?? 'us-east-1',
      external: true,
      startMs: 0,
    };
  } else if (env.VZTPL_TEST_RGW === '0') {
    info = { available: false, reason: 'VZTPL_TEST_RGW=0', failed: false };
  } else if (!(await runNeedsS3(project))) {
    info = { available: false, reason: 'no test file of this run needs S3', failed: false };
  } else if (missingCephBinaries().length) {
    info = {
      available: false,
      reason: `Ceph is not installed (missing ${missingCephBinaries().join(', ')}; scripts/setup.sh installs it)`,
      failed: false,
    };
  } else {
    try {
      handle = await startRgw();
      info = {
        available: true,
        endpoint: handle.endpoint,
        accessKeyId: handle.accessKeyId,
        secretAccessKey: handle.secretAccessKey,
        region: handle.region,
        external: false,
        startMs: handle.startMs,
      };
      console.log(`global-setup: Ceph RGW ready at ${handle.endpoint} in ${handle.startMs} ms`);
    } catch (err) {
      info = { available: false, reason: (err as Error).message, failed: true };
    }
  }
  const setVars = info.available && !info.external;
  if (info.available && !info.external) {
    env.VZTPL_TEST_S3_ENDPOINT = info.endpoint;
    env.VZTPL_TEST_S3_ACCESS_KEY_ID = info.accessKeyId;
    env.VZTPL_TEST_S3_SECRET_ACCESS_KEY = info.secretAccessKey;
    env.VZTPL_TEST_S3_REGION = info.region;
  }
  project.provide('vztplS3', info);
  return async () => {
    if (setVars) {
      for (const v of ['ENDPOINT', 'ACCESS_KEY_ID', 'SECRET_ACCESS_KEY', 'REGION']) delete env[`VZTPL_TEST_S3_${v}`];
    }
    await handle?.stop();
  };
}
