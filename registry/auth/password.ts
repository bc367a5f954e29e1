// Password hashes of the users file: "scrypt$N$r$p$<salt base64>$<hash base64>", made and
// checked with node's scrypt (asynchronous: the work runs on the thread pool, not the event
// loop) and compared with timingSafeEqual.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export const DEFAULT_SCRYPT = { N: 32768, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;
const HASH = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

function scrypt(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

interface Parsed {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** Parses a stored hash; undefined when it is not one (or asks for absurd work). */
export function parseHash(stored: string): Parsed | undefined {
  const m = HASH.exec(stored);
  if (!m) return undefined;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // N a power of two; bounded so that a hand-edited file cannot stall the server.
  if (N < 1024 || N > 1 << 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return undefined;
  const salt = Buffer.from(m[4]!, 'base64');
  const hash = Buffer.from(m[5]!, 'base64');
  if (salt.length < 8 || hash.length < 16) return undefined;
  return { N, r, p, salt, hash };
}

export function isValidHash(stored: string): boolean {
  return parseHash(stored) !== undefined;
}

function maxmem(N: number, r: number, p: number): number {
  return 128 * N * r * (p + 1) + 32 * 1024 * 1024;
}

export async function hashPassword(password: string, params: { N: number; r: number; p: number } = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const hash = await scrypt(password, salt, KEY_LENGTH, { ...params, maxmem: maxmem(params.N, params.r, params.p) });
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

// Checked against for unknown users, so a wrong name costs as much time as a wrong password.
let dummy: Promise<string> | undefined;

/** Whether `password` matches `stored`; an undefined `stored` (no such user) is always false. */
export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  const parsed = parseHash(stored ?? '') ?? parseHash(await (dummy ??= hashPassword('vztpl-no-such-user')))!;
  const key = await scrypt(password, parsed.salt, parsed.hash.length, { N: parsed.N, r: parsed.r, p: parsed.p, maxmem: maxmem(parsed.N, parsed.r, parsed.p) });
  return timingSafeEqual(key, parsed.hash) && stored !== undefined && parseHash(stored) !== undefined;
}
