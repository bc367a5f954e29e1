// Registry credentials in the containers/docker auth file format:
//   {"auths": {"HOST:PORT": {"auth": "base64(user:password)"}}}
// vztpl writes $REGISTRY_AUTH_FILE when set (as podman does), else ~/.config/vztpl/auth.json.
// It reads $REGISTRY_AUTH_FILE alone when set, else its own file, then podman's and docker's
// (${XDG_RUNTIME_DIR}/containers/auth.json or /run/containers/UID/auth.json,
// ~/.config/containers/auth.json, ~/.docker/config.json), so a `podman login` serves vztpl too.
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { writeSecretFileAtomic } from '../common/secret-file.ts';

export interface Credentials {
  username: string;
  password: string;
}

interface AuthFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; [k: string]: unknown }>;
  [k: string]: unknown;
}

/** The file `vztpl login` writes. */
export function authFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.REGISTRY_AUTH_FILE || join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'vztpl', 'auth.json');
}

/** The files credentials are looked up in, first match wins. */
export function authFileCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.REGISTRY_AUTH_FILE) return [env.REGISTRY_AUTH_FILE];
  const config = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  const uid = process.getuid?.() ?? 0;
  return [
    authFilePath(env),
    env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json') : join('/run/containers', String(uid), 'auth.json'),
    join(config, 'containers', 'auth.json'),
    join(env.DOCKER_CONFIG || join(homedir(), '.docker'), 'config.json'),
  ];
}

/** "HOST:PORT" of a registry base URL or reference ("http://127.0.0.1:5000", "127.0.0.1:5000"). */
export function registryKey(registry: string): string {
  const withScheme = /^[a-z]+:\/\//.test(registry) ? registry : `https://${registry}`;
  const url = new URL(withScheme);
  return url.port ? `${url.hostname}:${url.port}` : url.hostname;
}

async function readAuthFile(file: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`auth file ${file}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as AuthFile;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed;
  } catch (err) {
    throw new Error(`auth file ${file}: ${(err as Error).message}`);
  }
}

function entryCredentials(entry: NonNullable<AuthFile['auths']>[string] | undefined): Credentials | undefined {
  if (!entry) return undefined;
  if (typeof entry.auth === 'string' && entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string') return { username: entry.username, password: entry.password };
  return undefined;
}

/** Stored credentials for a registry, or undefined. */
export async function findCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<(Credentials & { file: string }) | undefined> {
  const key = registryKey(registry);
  for (const file of authFileCandidates(env)) {
    const auths = (await readAuthFile(file).catch(() => undefined))?.auths ?? {};
    const found = entryCredentials(auths[key] ?? auths[`https://${key}`] ?? auths[`http://${key}`]);
    if (found) return { ...found, file };
  }
  return undefined;
}

async function writeAuthFile(file: string, content: AuthFile): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeSecretFileAtomic(file, `${JSON.stringify(content, null, '\t')}\n`);
}

/** Stores credentials for a registry (other entries and keys of the file are kept). */
export async function storeCredentials(file: string, registry: string, creds: Credentials): Promise<void> {
  const content = (await readAuthFile(file)) ?? {};
  content.auths = { ...(content.auths ?? {}), [registryKey(registry)]: { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') } };
  await writeAuthFile(file, content);
}

/** Removes a registry's credentials (all of them with registry undefined); whether any were there. */
export async function removeCredentials(file: string, registry: string | undefined): Promise<boolean> {
  const content = await readAuthFile(file);
  if (!content?.auths) return false;
  if (registry === undefined) {
    const had = Object.keys(content.auths).length > 0;
    content.auths = {};
    await writeAuthFile(file, content);
    return had;
  }
  const key = registryKey(registry);
  const keys = [key, `https://${key}`, `http://${key}`].filter((k) => k in content.auths!);
  if (!keys.length) return false;
  for (const k of keys) delete content.auths[k];
  await writeAuthFile(file, content);
  return true;
}
