// Finding host programs on PATH. Kept apart from common/run.ts (execa) so that quick commands
// such as `vztpl create` do not load a process library they do not use.
import { fs } from './builtins.ts';
import { delimiter, join } from 'node:path';
import { MissingToolError } from './errors.ts';

/** Finds a program on PATH (plus the sbin directories root's PATH may lack). */
export function findProgram(program: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/local/sbin', '/usr/sbin', '/sbin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, program);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
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
