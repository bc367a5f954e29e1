import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // End-to-end tests bootstrap real distributions and mount filesystems: run files one at a
    // time (2 cores, shared caches) and give them room.
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 600_000,
    reporters: ['default'],
    // One throwaway Ceph RGW (S3) for the run, when a test file needs it: test/services/s3-env.ts.
    globalSetup: ['test/global-setup.ts'],
  },
});
