// Turns the `auth` settings into what the HTTP layer needs: the users (re-read on change) and
// the token key (configured, or generated next to the users file).
import { access, constants } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UsageError } from '../../common/errors.ts';
import { authLimitsSchema, type RegistryConfig } from '../config.ts';
import type { AuthLimits } from './guard.ts';
import { loadOrCreateSecret, secretPathFor } from './secret.ts';
import { UsersStore } from './users.ts';

/** The `auth` settings; `limits` (or any of them) may be left out by in-process callers: defaults. */
export type AuthConfig = Omit<RegistryConfig['auth'], 'limits'> & { limits?: Partial<AuthLimits> };

export interface AuthRuntime {
  anonymousPull: boolean;
  users: UsersStore;
  secret: Buffer;
  tokenTtl: number;
  /** Token endpoint URL for challenges; derived from each request's Host when unset. */
  realm?: string;
  limits: AuthLimits;
}

interface Log {
  warn: (msg: string) => void;
  error: (obj: object, msg: string) => void;
}

export async function prepareAuth(config: AuthConfig, log: Log): Promise<AuthRuntime | undefined> {
  if (!config.enabled) return undefined;
  try {
    return await prepare(config, log);
  } catch (err) {
    throw new UsageError(`registry auth: ${(err as Error).message}`);
  }
}

async function prepare(config: AuthConfig, log: Log): Promise<AuthRuntime> {
  if (!config.usersFile) throw new Error('auth.enabled needs auth.usersFile');
  const users = new UsersStore(config.usersFile, (err) => log.error({ err }, `users file changed but cannot be used (keeping the previous users): ${err.message}`));
  await access(dirname(config.usersFile), constants.W_OK | constants.X_OK).catch(() => {
    if (!config.secret) throw new Error(`auth.usersFile ${config.usersFile}: its directory must exist and be writable (the token secret is kept there)`);
  });
  await users.load();
  if (users.size === 0) log.warn(`auth: no users in ${config.usersFile} yet (add some with "vztpl user add"): only anonymous access works`);
  const secret = config.secret ? Buffer.from(config.secret, 'utf8') : await loadOrCreateSecret(secretPathFor(config.usersFile), log.warn);
  const limits = authLimitsSchema.parse(config.limits ?? {});
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  if (limits.checkConcurrency >= pool) log.warn(`auth.limits.checkConcurrency ${limits.checkConcurrency} takes the whole thread pool (${pool} threads, UV_THREADPOOL_SIZE): file I/O will wait behind password checks`);
  return { anonymousPull: config.anonymousPull, users, secret, tokenTtl: config.tokenTtl, realm: config.realm, limits };
}
