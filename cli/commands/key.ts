import { constants } from 'node:fs';
import { lstat, open, unlink } from 'node:fs/promises';
import { ExitCode, UsageError, VztplError } from '../../common/errors.ts';
import { generateCosignKeyPair } from '../../format/sigstore/private-key.ts';
import { parseCommandArgs } from '../args.ts';
import { promptHidden } from '../prompt.ts';

const HELP = `
Usage: vztpl key generate PREFIX

Makes an ECDSA P-256 key pair for signing templates, in cosign's format (what cosign, skopeo
--sign-by-sigstore-private-key and podman read):
  PREFIX.key  the private key, encrypted with a password (scrypt + NaCl secretbox), mode 0600
  PREFIX.pub  the public key (PEM), for "vztpl verify --key" and policy.json's sigstoreSigned
The password comes from $VZTPL_KEY_PASSWORD, else it is asked twice at the terminal.
Existing files are never overwritten.

Example:
  vztpl key generate /etc/vztpl/keys/acme
  vztpl push out/debian-12-x86_64 127.0.0.1:5000/acme/debian-12 --sign-key /etc/vztpl/keys/acme.key
`;

/** A new key's password: $VZTPL_KEY_PASSWORD, else typed twice at the terminal. */
async function newPassword(): Promise<string> {
  const fromEnv = process.env.VZTPL_KEY_PASSWORD;
  if (fromEnv !== undefined) return fromEnv;
  if (!process.stdin.isTTY) throw new UsageError('key generate: no password for the new key: set VZTPL_KEY_PASSWORD, or run on a terminal to be asked');
  const first = await promptHidden('Password for the new private key: ', 'key password');
  const second = await promptHidden('Password again: ', 'key password');
  if (first !== second) throw new UsageError('key generate: the passwords differ; nothing was written');
  return first;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
}

/** Creates `path` with `content` (never over an existing file), mode `mode` whatever the umask. */
async function createFile(path: string, content: string, mode: number): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await handle.chmod(mode);
    await handle.writeFile(content);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(path).catch(() => undefined);
    throw err;
  }
  await handle.close();
}

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('key', argv, {}, HELP);
  if (!args) return 0;
  const [sub, prefix, ...extra] = args.positionals;
  if (sub !== 'generate' || !prefix || extra.length) throw new UsageError(`key: ${sub && sub !== 'generate' ? `unknown subcommand "${sub}"` : 'give "generate PREFIX"'}\n${HELP}`);
  const keyFile = `${prefix}.key`;
  const pubFile = `${prefix}.pub`;
  for (const file of [keyFile, pubFile]) {
    if (await exists(file)) throw new VztplError(`key generate: ${file} exists; refusing to overwrite it (choose another PREFIX or remove it)`, ExitCode.conflict);
  }
  const password = await newPassword();
  const pair = await generateCosignKeyPair(password);
  await createFile(keyFile, pair.privatePem, 0o600).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EEXIST') throw new VztplError(`key generate: ${keyFile} exists; refusing to overwrite it`, ExitCode.conflict);
    throw err;
  });
  try {
    await createFile(pubFile, pair.publicPem, 0o644);
  } catch (err) {
    await unlink(keyFile).catch(() => undefined);
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new VztplError(`key generate: ${pubFile} exists; refusing to overwrite it`, ExitCode.conflict);
    throw err;
  }
  process.stderr.write(`Private key written to ${keyFile}\nPublic key written to ${pubFile} (${pair.publicKey.description}, ${pair.publicKey.fingerprint})\n`);
  return 0;
}
