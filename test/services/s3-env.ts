// How a test file gets the S3 server of the run (started once by test/global-setup.ts).
// A test file that needs S3 calls s3TestEnv() at module level: the call is also the marker the
// global setup looks for before it starts a server at all.
import { inject } from 'vitest';
import type { S3DriverOptions } from '../../registry/storage/s3.ts';

export interface S3TestEnv {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** true when VZTPL_TEST_S3_ENDPOINT named a server of the caller's (then no fault tests). */
  external: boolean;
  /** Milliseconds the RGW took to start (0 for an external server). */
  startMs: number;
}

export type S3TestInfo = ({ available: true } & S3TestEnv) | { available: false; reason: string; failed: boolean };

declare module 'vitest' {
  export interface ProvidedContext {
    vztplS3: S3TestInfo;
  }
}

/**
 * The run's S3 server, or undefined when there is none and the caller should skip: only
 * outside CI and only when Ceph is not installed. In CI (CI=true), or when the server failed to
 * start, it throws, so the test file fails loudly instead of skipping.
 */
export function s3TestEnv(): S3TestEnv | undefined {
  const info = inject('vztplS3') as S3TestInfo | undefined;
  if (!info) throw new Error('s3TestEnv: no S3 info provided: is test/global-setup.ts registered as globalSetup?');
  if (info.available) {
    const { available: _, ...env } = info;
    return env;
  }
  if (info.failed) throw new Error(`S3 test server failed to start: ${info.reason}`);
  if (process.env.CI === 'true') throw new Error(`S3 test server unavailable in CI: ${info.reason}`);
  return undefined;
}

/** The S3 driver's options for `bucket` on a test server (the run's, or a fault test's own RGW). */
export function testDriverOptions(
  server: Pick<S3TestEnv, 'endpoint' | 'region' | 'accessKeyId' | 'secretAccessKey'>,
  bucket: string,
  more: Partial<S3DriverOptions> = {},
): S3DriverOptions {
  return {
    bucket,
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    ...more,
  };
}
