// The users file: who may do what. YAML or JSON:
//
//   users:
//     - name: alice
//       password: scrypt$32768$8$1$<salt b64>$<hash b64>
//       scopes:
//         - repositories: "acme/**"
//           actions: [pull, push]
//
// `vztpl user` edits it (atomically, mode 0600, under a lock file); the registry re-reads it
// when it changes, so users can be added or removed while it serves.
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeSecretFileAtomic } from '../../common/secret-file.ts';
import { withLock } from '../../common/lock.ts';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { compilePattern, isValidPattern } from './glob.ts';
import { isValidHash } from './password.ts';

export const ACTIONS = ['pull', 'push', 'delete', 'admin'] as const;
export type Action = (typeof ACTIONS)[number];

/** A user name: no ':' (it separates name and password in Basic credentials), no spaces. */
export const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;

const scopeSchema = z.strictObject({
  repositories: z.string().refine(isValidPattern, 'must be a repository pattern: lower-case names, /, * (within a component), ** (across components)'),
  actions: z.array(z.enum(ACTIONS)).min(1),
});

const userSchema = z.strictObject({
  name: z.string().regex(USER_NAME, 'must be letters, digits and . _ @ + - (at most 64), starting with a letter or digit'),
  password: z.string().refine(isValidHash, 'must be a scrypt hash (scrypt$N$r$p$salt$hash): set it with vztpl user passwd'),
  scopes: z.array(scopeSchema).default([]),
});

const fileSchema = z.strictObject({ users: z.array(userSchema).nullable().default([]) });

export type UserScope = z.infer<typeof scopeSchema>;
export type User = z.infer<typeof userSchema>;

export interface CompiledScope {
  pattern: string;
  regex: RegExp;
  actions: ReadonlySet<Action>;
}

export interface CompiledUser {
  name: string;
  /** The stored hash: changes when the password does. */
  password: string;
  scopes: CompiledScope[];
}

export function compileUser(user: User): CompiledUser {
  return { name: user.name, password: user.password, scopes: user.scopes.map((s) => ({ pattern: s.repositories, regex: compilePattern(s.repositories), actions: new Set(s.actions) })) };
}

/** Parses and checks a users file's text; errors name the file and the field at fault. */
export function parseUsers(text: string, file: string): User[] {
  let raw: unknown;
  try {
    raw = text.trim() === '' ? {} : parseYaml(text);
  } catch (err) {
    throw new Error(`users file ${file}: ${(err as Error).message}`);
  }
  const result = fileSchema.safeParse(raw ?? {});
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`);
    throw new Error(`users file ${file}:\n  ${lines.join('\n  ')}`);
  }
  const users = result.data.users ?? [];
  const seen = new Set<string>();
  for (const u of users) {
    if (seen.has(u.name)) throw new Error(`users file ${file}: user ${u.name} appears twice`);
    seen.add(u.name);
  }
  return users;
}

/** Reads a users file; a missing file is no users when `missingOk`. */
export async function readUsers(file: string, opts: { missingOk?: boolean } = {}): Promise<User[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && opts.missingOk) return [];
    throw new Error(`users file ${file}: ${(err as Error).message}`);
  }
  return parseUsers(text, file);
}

export function serializeUsers(users: User[], file: string): string {
  const doc = { users: users.map((u) => ({ name: u.name, password: u.password, scopes: u.scopes.map((s) => ({ repositories: s.repositories, actions: [...s.actions] })) })) };
  if (file.endsWith('.json')) return `${JSON.stringify(doc, null, 2)}\n`;
  return `# vztpl registry users: edit with "vztpl user" (passwords are scrypt hashes)\n${stringifyYaml(doc)}`;
}

/** Runs `fn` holding FILE.lock (a lock whose process died is taken over). */
export async function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  return withLock(`${file}.lock`, fn, { timeoutMs: 10_000 });
}

/** Reads, changes and writes back a users file under its lock. */
export async function updateUsers(file: string, change: (users: User[]) => User[] | Promise<User[]>): Promise<User[]> {
  await mkdir(dirname(file), { recursive: true, mode: 0o750 });
  return withFileLock(file, async () => {
    const users = await change(await readUsers(file, { missingOk: true }));
    parseUsers(serializeUsers(users, file), file); // never write what could not be read back
    await writeSecretFileAtomic(file, serializeUsers(users, file));
    return users;
  });
}

/**
 * The users of a file as the registry sees them, re-read when the file changes (checked at most
 * once a second). A change that does not parse is logged and ignored: the last good list stays.
 */
export class UsersStore {
  readonly file: string;
  private users = new Map<string, CompiledUser>();
  private signature = '';
  private checkedAt = 0;
  private pending: Promise<void> | undefined;
  private readonly onError: (err: Error) => void;
  /** Called after the users changed (the registry drops its credential cache). */
  onChange: () => void = () => {};

  constructor(file: string, onError: (err: Error) => void = () => {}) {
    this.file = file;
    this.onError = onError;
  }

  /** Loads the file now; throws when it does not parse (start-up must not go on with it). */
  async load(): Promise<void> {
    const sig = await this.fileSignature();
    this.set(await readUsers(this.file, { missingOk: true }), sig);
  }

  async get(name: string): Promise<CompiledUser | undefined> {
    await this.refresh();
    return this.users.get(name);
  }

  get size(): number {
    return this.users.size;
  }

  private set(users: User[], sig: string): void {
    this.users = new Map(users.map((u) => [u.name, compileUser(u)]));
    this.signature = sig;
    this.checkedAt = Date.now();
    this.onChange();
  }

  private async fileSignature(): Promise<string> {
    const info = await stat(this.file).catch(() => undefined);
    return info ? `${info.ino}:${info.size}:${info.mtimeMs}` : 'missing';
  }

  private refresh(): Promise<void> {
    if (Date.now() - this.checkedAt < 1000) return Promise.resolve();
    this.pending ??= (async () => {
      try {
        const sig = await this.fileSignature();
        if (sig === this.signature) return;
        try {
          this.set(await readUsers(this.file, { missingOk: true }), sig);
        } catch (err) {
          this.signature = sig; // report a bad edit once, not on every request
          this.onError(err as Error);
        }
      } finally {
        this.checkedAt = Date.now();
        this.pending = undefined;
      }
    })();
    return this.pending;
  }
}
