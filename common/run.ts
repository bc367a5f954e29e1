// Runs host programs through execa, streaming their output line by line to a logger and
// keeping the last lines so that a failure can show them.
import { execa, type Options } from 'execa';
import { CommandError } from './errors.ts';
import { findProgram, requirePrograms } from './programs.ts';

export { findProgram, requirePrograms };

const TAIL_LINES = 20;

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
