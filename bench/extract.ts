// Extraction throughput: cache/extract.ts's extractLayer against `zstd -dc | tar -x` on the same
// zstd layer blob (default: the largest zstd blob of the test build cache, the Debian minbase
// bootstrap layer), on a dedicated loop-mounted ext4 (the shared disk's noise swamps the
// difference) and on a tmpfs (no disk at all: CPU cost only), both mounted in a private mount
// namespace that disappears with the run. Rounds alternate the methods; medians are reported.
//   node bench/extract.ts [BLOB] [ROUNDS]      (root; prints a Markdown table)
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractLayer } from '../cache/extract.ts';
import type { Digest } from '../format/digest.ts';

const BLOBS = '/var/tmp/vztpl-test/build-cache/blobs/sha256';
const IMAGE = '/var/tmp/vztpl-extract-bench.img';
const MNT = '/var/tmp/vztpl-extract-bench';

function largestZstdBlob(): string {
  const blobs = readdirSync(BLOBS)
    .map((name) => join(BLOBS, name))
    .filter((p) => readFileSync(p).subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])))
    .sort((a, b) => statSync(b).size - statSync(a).size);
  if (!blobs[0]) throw new Error(`no zstd blob in ${BLOBS}`);
  return blobs[0];
}

const blob = process.argv[2] || largestZstdBlob();
const rounds = Number(process.argv[3] ?? 5);

if (!process.env.VZTPL_BENCH_INNER) {
  // Outer: a fresh 2 GiB ext4 image, then this script again inside a private mount namespace.
  rmSync(IMAGE, { force: true });
  execFileSync('truncate', ['-s', '2G', IMAGE]);
  execFileSync('mkfs.ext4', ['-q', '-F', IMAGE]);
  mkdirSync(join(MNT, 'ext4'), { recursive: true });
  mkdirSync(join(MNT, 'tmpfs'), { recursive: true });
  const script = 'set -e; mount -o loop "$1" "$2/ext4"; mount -t tmpfs -o size=1g vztpl-bench "$2/tmpfs"; shift 2; exec "$@"';
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', IMAGE, MNT, process.execPath, self, blob, String(rounds)], {
    stdio: 'inherit',
    env: { ...process.env, VZTPL_BENCH_INNER: '1' },
  });
  rmSync(IMAGE, { force: true });
  rmSync(MNT, { recursive: true, force: true });
  process.exit(r.status ?? 1);
}

const digest = `sha256:${blob.split('/').pop()}` as Digest;
const blobSize = statSync(blob).size;
const tarSize = Number(execFileSync('sh', ['-c', 'zstd -dc "$1" | wc -c', 'sh', blob], { encoding: 'utf8' }).trim());

type Method = { name: string; run: (dir: string) => Promise<void> };
const methods: Method[] = [
  {
    name: 'extractLayer (verifies digest + diff_id)',
    run: async (dir) => {
      await extractLayer(createReadStream(blob, { highWaterMark: 1 << 20 }), { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', expectedDigest: digest, target: join(dir, 'layer'), durable: false });
    },
  },
  {
    name: 'zstd -dc \\| tar -x --numeric-owner -p',
    run: async (dir) => {
      mkdirSync(join(dir, 'layer'));
      execFileSync('sh', ['-c', 'zstd -dc "$1" | tar -x --numeric-owner -p -C "$2"', 'sh', blob, join(dir, 'layer')]);
    },
  },
  {
    name: 'sha256sum blob; zstd -dc \\| tee >(sha256sum) \\| tar -x ... (tar with the same checks)',
    run: async (dir) => {
      mkdirSync(join(dir, 'layer'));
      execFileSync('bash', ['-c', 'set -o pipefail; sha256sum "$1" >/dev/null && zstd -dc "$1" | tee >(sha256sum >/dev/null) | tar -x --numeric-owner -p -C "$2"', 'bash', blob, join(dir, 'layer')]);
    },
  },
  {
    name: 'extractLayer, durable (syncfs before the rename)',
    run: async (dir) => {
      await extractLayer(createReadStream(blob, { highWaterMark: 1 << 20 }), { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', expectedDigest: digest, target: join(dir, 'layer') });
    },
  },
  {
    name: 'zstd -dc \\| tar -x ...; sync -f',
    run: async (dir) => {
      mkdirSync(join(dir, 'layer'));
      execFileSync('sh', ['-c', 'zstd -dc "$1" | tar -x --numeric-owner -p -C "$2" && sync -f "$2"', 'sh', blob, join(dir, 'layer')]);
    },
  },
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const rows: string[] = [];
for (const fs of ['ext4', 'tmpfs']) {
  const dir = join(MNT, fs);
  const times = new Map<string, number[]>(methods.map((m) => [m.name, []]));
  for (let round = 0; round < rounds + 1; round++) {
    // Rotate the order, so no method always runs after the same one.
    for (let k = 0; k < methods.length; k++) {
      const m = methods[(round + k) % methods.length]!;
      rmSync(join(dir, 'layer'), { recursive: true, force: true });
      execFileSync('sync', ['-f', dir]);
      const t = performance.now();
      await m.run(dir);
      const ms = performance.now() - t;
      if (round > 0) times.get(m.name)!.push(ms); // round 0 warms caches and the JIT
    }
  }
  rmSync(join(dir, 'layer'), { recursive: true, force: true });
  for (const m of methods) {
    const ms = median(times.get(m.name)!);
    rows.push(`| ${fs} | ${m.name} | ${ms.toFixed(0)} | ${(tarSize / 1e6 / (ms / 1000)).toFixed(0)} | ${times.get(m.name)!.map((x) => x.toFixed(0)).join(', ')} |`);
  }
}
console.log(`Layer ${digest}: ${(blobSize / 1e6).toFixed(1)} MB zstd, ${(tarSize / 1e6).toFixed(1)} MB tar; ${rounds} rounds (after one warm-up), median.\n`);
console.log('| filesystem | method | ms | MB/s (tar) | all runs (ms) |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(r);
