// Runs one extractLayer in its own process, for the tests that kill it (SIGKILL mid-extraction)
// or run it on a tiny filesystem in a private mount namespace (ENOSPC). Prints one JSON line:
// the result or the error, and what the target's parent holds afterwards (with its
// filesystem's free blocks and inodes before and after, for "nothing half-made").
//   node extract-child.ts BLOB MEDIA_TYPE DIGEST TARGET
import { createReadStream, readdirSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { extractLayer, LayerExtractError, ExtractIOError } from '../../cache/extract.ts';
import type { Digest } from '../../format/digest.ts';

const [blob, mediaType, digest, target] = process.argv.slice(2);
if (!blob || !mediaType || !digest || !target) throw new Error('usage: extract-child.ts BLOB MEDIA_TYPE DIGEST TARGET');
const parent = dirname(target);
const free = () => {
  const s = statfsSync(parent);
  return { blocks: s.bfree, inodes: s.ffree };
};
const before = free();
let out: Record<string, unknown>;
try {
  const result = await extractLayer(createReadStream(blob, { highWaterMark: 1 << 20 }), { mediaType, expectedDigest: digest as Digest, target, durable: false });
  out = { ok: true, result };
} catch (err) {
  const e = err as Error;
  out = {
    ok: false,
    name: e.name,
    message: e.message,
    kind: err instanceof LayerExtractError ? err.kind : undefined,
    entry: err instanceof LayerExtractError ? err.entry : undefined,
    code: err instanceof ExtractIOError ? err.code : (err as NodeJS.ErrnoException).code,
  };
}
out.after = readdirSync(parent);
out.freeBefore = before;
out.freeAfter = free();
process.stdout.write(`${JSON.stringify(out)}\n`);
