// The key tokens are signed with. Unless configured, it is generated once and kept next to the
// users file (USERS.secret, mode 0600), so every instance that shares the users file (and its
// directory) signs and accepts the same tokens.
import { randomBytes } from 'node:crypto';
import { link, open, readFile, stat, unlink } from 'node:fs/promises';

export function secretPathFor(usersFile: string): string {
  return `${usersFile}.secret`;
}

async function readSecret(file: string, warn: (msg: string) => void): Promise<Buffer> {
  const info = await stat(file);
  if ((info.mode & 0o077) !== 0) warn(`${file} is readable by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
  const text = (await readFile(file, 'utf8')).trim();
  if (text.length < 32) throw new Error(`${file}: the token secret is too short (at least 32 characters)`);
  return Buffer.from(text, 'utf8');
}

/** Reads the secret file, creating it first if there is none (race-free between instances). */
export async function loadOrCreateSecret(file: string, warn: (msg: string) => void = () => {}): Promise<Buffer> {
  try {
    return await readSecret(file, warn);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // Written whole to a temp file, then hard-linked into place: link() fails if another
  // instance got there first, and nobody ever reads a half-written secret.
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(`${randomBytes(32).toString('base64url')}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  return readSecret(file, warn);
}
