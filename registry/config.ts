// Registry settings from a config file (YAML or JSON), VZTPL_* environment variables and
// command-line flags, in that order of precedence (flags win), validated with zod. A bad
// setting stops start-up with a message naming it and where it came from.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { UsageError } from '../common/errors.ts';

const listen = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be HOST:PORT, for example 127.0.0.1:5000')
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'port must be at most 65535');

const storage = z
  .string()
  .regex(/^(fs:.+|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?)$/, 'must be fs:DIR or s3://BUCKET[/PREFIX]');

/** Bounds on what password checks (scrypt, ~100 ms of a core each) may cost: auth.limits. */
export const authLimitsSchema = z.strictObject({
  /** Failed logins allowed per client address (IPv6: per /64) before 429; regained over `window`. */
  failuresPerAddress: z.number().int().min(1).max(10_000).default(10),
  /** Failed logins allowed per user name (from addresses that have not logged in as it). */
  failuresPerUser: z.number().int().min(1).max(10_000).default(20),
  /** Seconds over which a full allowance of failures is regained (steadily). */
  window: z.number().int().min(1).max(86_400).default(60),
  /** Password checks run at once: each takes a thread-pool thread, which file I/O also needs. */
  checkConcurrency: z.number().int().min(1).max(16).default(1),
  /** Password checks that may wait; beyond, 503 at once. */
  checkQueue: z.number().int().min(0).max(10_000).default(32),
  /** Seconds a successful check is remembered (a keyed hash, dropped when the users file changes). */
  cacheTtl: z.number().int().min(0).max(3600).default(60),
});

export const configSchema = z.strictObject({
  listen: listen.default('127.0.0.1:5000'),
  storage: storage.default('fs:/var/lib/vztpl/registry'),
  s3: z
    .strictObject({
      endpoint: z.string().url().optional(),
      pathStyle: z.boolean().default(false),
      region: z.string().optional(),
      /** Redirect blob GETs to presigned URLs (clients then fetch from S3 directly). */
      redirect: z.boolean().default(false),
    })
    .default({ pathStyle: false, redirect: false }),
  /** HTTPS: a PEM certificate (chain) and its unencrypted key; reloaded on SIGHUP or a change. Absent: plain HTTP. */
  tls: z
    .strictObject({
      cert: z.string().min(1, 'must name the certificate file (PEM)').optional(),
      key: z.string().min(1, 'must name the private key file (PEM)').optional(),
    })
    .superRefine((t, ctx) => {
      const hint = 'HTTPS needs both: --tls-cert and --tls-key, VZTPL_TLS_CERT and VZTPL_TLS_KEY, or tls: {cert, key}';
      if (t.cert === undefined) ctx.addIssue({ code: 'custom', path: ['cert'], message: `no certificate for the key: ${hint}` });
      if (t.key === undefined) ctx.addIssue({ code: 'custom', path: ['key'], message: `no private key for the certificate: ${hint}` });
    })
    .transform((t) => ({ cert: t.cert!, key: t.key! }))
    .optional(),
  /**
   * Public keys (PEM files) of the template signers the catalog names: a signature that verifies
   * with one of them is reported with the key's fingerprint. The registry checks nothing else.
   */
  signatureKeys: z.array(z.string().min(1, 'must name a public key file (PEM)')).default([]),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Seconds to wait for in-flight requests on SIGTERM before closing anyway. */
  shutdownTimeout: z.number().int().positive().default(30),
  /** Users, scopes and the token flow (registry/auth/, registry/http/auth.ts). Off: an open registry. */
  auth: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** Anyone may pull (and search) without credentials; pushing and deleting still need a user. */
      anonymousPull: z.boolean().default(true),
      /** The users file (YAML or JSON), managed with `vztpl user`. */
      usersFile: z.string().min(1).optional(),
      /** Lifetime of tokens from /token, in seconds. */
      tokenTtl: z.number().int().min(10).max(86_400).default(300),
      /** HMAC key for tokens; default: generated once into USERS_FILE.secret (mode 0600). */
      secret: z.string().min(32, 'must be at least 32 characters').optional(),
      /** URL of the token endpoint in challenges; default: from the request's Host, + /token. */
      realm: z.string().url().optional(),
      limits: authLimitsSchema.prefault({}),
    })
    .refine((a) => !a.enabled || a.usersFile, { message: 'auth.enabled needs auth.usersFile (create it with vztpl user add)', path: ['usersFile'] })
    .prefault({}),
});

export type RegistryConfig = z.infer<typeof configSchema>;

type Source = 'file' | 'env' | 'flag';

const ENV: Record<string, { path: string[]; type: 'string' | 'boolean' | 'number' | 'list' }> = {
  VZTPL_LISTEN: { path: ['listen'], type: 'string' },
  VZTPL_STORAGE: { path: ['storage'], type: 'string' },
  VZTPL_S3_ENDPOINT: { path: ['s3', 'endpoint'], type: 'string' },
  VZTPL_S3_PATH_STYLE: { path: ['s3', 'pathStyle'], type: 'boolean' },
  VZTPL_S3_REGION: { path: ['s3', 'region'], type: 'string' },
  VZTPL_S3_REDIRECT: { path: ['s3', 'redirect'], type: 'boolean' },
  VZTPL_TLS_CERT: { path: ['tls', 'cert'], type: 'string' },
  VZTPL_TLS_KEY: { path: ['tls', 'key'], type: 'string' },
  VZTPL_LOG_LEVEL: { path: ['logLevel'], type: 'string' },
  VZTPL_SIGNATURE_KEYS: { path: ['signatureKeys'], type: 'list' },
  VZTPL_SHUTDOWN_TIMEOUT: { path: ['shutdownTimeout'], type: 'number' },
  VZTPL_AUTH_ENABLED: { path: ['auth', 'enabled'], type: 'boolean' },
  VZTPL_AUTH_ANONYMOUS_PULL: { path: ['auth', 'anonymousPull'], type: 'boolean' },
  VZTPL_AUTH_USERS_FILE: { path: ['auth', 'usersFile'], type: 'string' },
  VZTPL_AUTH_TOKEN_TTL: { path: ['auth', 'tokenTtl'], type: 'number' },
  VZTPL_AUTH_SECRET: { path: ['auth', 'secret'], type: 'string' },
  VZTPL_AUTH_REALM: { path: ['auth', 'realm'], type: 'string' },
  VZTPL_AUTH_FAILURES_PER_ADDRESS: { path: ['auth', 'limits', 'failuresPerAddress'], type: 'number' },
  VZTPL_AUTH_FAILURES_PER_USER: { path: ['auth', 'limits', 'failuresPerUser'], type: 'number' },
  VZTPL_AUTH_FAILURE_WINDOW: { path: ['auth', 'limits', 'window'], type: 'number' },
  VZTPL_AUTH_CHECK_CONCURRENCY: { path: ['auth', 'limits', 'checkConcurrency'], type: 'number' },
  VZTPL_AUTH_CHECK_QUEUE: { path: ['auth', 'limits', 'checkQueue'], type: 'number' },
  VZTPL_AUTH_CACHE_TTL: { path: ['auth', 'limits', 'cacheTtl'], type: 'number' },
};

function set(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
  node[path.at(-1)!] = value;
}

function convert(name: string, raw: string, type: 'string' | 'boolean' | 'number' | 'list'): unknown {
  if (type === 'string') return raw;
  // Comma-separated, as PATH-like lists of files are.
  if (type === 'list') return raw.split(',').map((item) => item.trim()).filter(Boolean);
  if (type === 'number') {
    if (!/^\d+$/.test(raw)) throw new UsageError(`${name}=${raw}: must be a whole number`);
    return Number(raw);
  }
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new UsageError(`${name}=${raw}: must be true or false`);
}

export interface ConfigInput {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Flag values, by config path ('listen', 's3.endpoint', ...). */
  flags?: Record<string, unknown>;
}

export async function loadConfig(input: ConfigInput): Promise<RegistryConfig> {
  const merged: Record<string, unknown> = {};
  const origin = new Map<string, string>();
  if (input.file) {
    let text: string;
    try {
      text = await readFile(input.file, 'utf8');
    } catch (err) {
      throw new UsageError(`config file ${input.file}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (err) {
      throw new UsageError(`config file ${input.file}: ${(err as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`config file ${input.file}: must be a mapping of settings`);
      Object.assign(merged, parsed);
      for (const key of Object.keys(parsed)) origin.set(key, `config file ${input.file}`);
    }
  }
  const env = input.env ?? process.env;
  for (const [name, spec] of Object.entries(ENV)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    set(merged, spec.path, convert(name, raw, spec.type));
    origin.set(spec.path.join('.'), `environment variable ${name}`);
  }
  for (const [path, value] of Object.entries(input.flags ?? {})) {
    if (value === undefined) continue;
    set(merged, path.split('.'), value);
    origin.set(path, `option --${path.replace('.', '-').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  }
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const path = issue.path.join('.');
      // a missing setting has no origin of its own: name where its section's other settings came from
      const section = String(issue.path[0]);
      const sibling = [...origin.keys()].find((k) => k.startsWith(`${section}.`));
      const from = origin.get(path) ?? origin.get(section) ?? (sibling && origin.get(sibling)) ?? 'settings';
      return `${path || '(config)'} (from ${from}): ${issue.message}`;
    });
    throw new UsageError(`invalid registry configuration:\n  ${lines.join('\n  ')}`);
  }
  return result.data;
}

export function parseListen(value: string): { host: string; port: number } {
  const colon = value.lastIndexOf(':');
  return { host: value.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(value.slice(colon + 1)) };
}
