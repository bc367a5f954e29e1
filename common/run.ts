// Runs host programs through execa, streaming their output line by line to a logger and
// keeping the last lines so that a failure can show them.
import { execa, type Options } from 'execa';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { CommandError, MissingToolError } from './errors.ts';

const TAIL_LINES = 20;

/** Finds a program on PATH (plus the sbin directories root's PATH may lack). */
export function findProgram(program: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/local/sbin', '/usr/sbin', '/sbin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* keep looking */
    }
  }
  return undefined;
}

/** Throws MissingToolError naming the Debian package for the first program that is missing. */
export function requirePrograms(tools: Readonly<Record<string, string>>): void {
  for (const [program, debianPackage] of Object.entries(tools)) {
    if (!findProgram(program)) throw new MissingToolError(program, debianPackage);
  }
}

export interface RunOptions {
  /** Human-readable description used in errors, e.g. 'step 3 (run)'. */
  what: string;
  log?: (line: string) => void;
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Replace the environment instead of extending process.env. */
  cleanEnv?: boolean;
  signal?: AbortSignal;
  input?: string;
  /**
   * Signal sent when `signal` aborts. Namespaced commands (common/isolate.ts) take SIGKILL:
   * unshare ignores SIGTERM, and the kernel tears their namespaces down anyway.
   */
  killSignal?: 'SIGTERM' | 'SIGKILL';
}

/** Runs a program; resolves with its stdout. On failure throws CommandError with the output tail. */
export async function run(file: string, args: readonly string[], opts: RunOptions): Promise<string> {
  const tail: string[] = [];
  const remember = (line: string) => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    opts.log?.(line);
  };
  const options: Options = {
    cwd: opts.cwd,
    env: opts.env,
    extendEnv: !opts.cleanEnv,
    cancelSignal: opts.signal,
    forceKillAfterDelay: 5000,
    killSignal: opts.killSignal ?? 'SIGTERM',
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : 'pipe',
    reject: false,
    lines: false,
    stripFinalNewline: true,
  };
  const child = execa(file, args, options);
  let stdout = '';
  let pendingErr = '';
  let pendingOut = '';
  const split = (chunk: Buffer, pending: string): string => {
    const text = pending + chunk.toString('utf8');
    const lines = text.split('\n');
    const rest = lines.pop() ?? '';
    for (const l of lines) remember(l);
    return rest;
  };
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString('utf8');
    pendingOut = split(c, pendingOut);
  });
  child.stderr?.on('data', (c: Buffer) => {
    pendingErr = split(c, pendingErr);
  });
  const result = await child;
  if (pendingOut) remember(pendingOut);
  if (pendingErr) remember(pendingErr);
  if (result.failed) {
    if ((result as { code?: string }).code === 'ENOENT') throw new CommandError(`${opts.what}: ${file} was not found`, undefined, []);
    if (result.isCanceled) throw opts.signal?.reason ?? new CommandError(opts.what, undefined, tail);
    throw new CommandError(opts.what, result.exitCode, tail);
  }
  return stdout;
}
