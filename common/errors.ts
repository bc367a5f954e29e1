// Errors that reach the user. Each carries the process exit code the CLI uses for it, so
// provisioning systems can tell bad input from a failed build from a missing host tool.

export const ExitCode = {
  ok: 0,
  /** A build, pull or other operation failed. */
  failure: 1,
  /** The input is invalid: a recipe, an argument, a name. Nothing ran. */
  usage: 2,
  /** The host lacks a program; the message names the Debian package to install. */
  missingTool: 3,
  /** Unknown template, unsatisfiable version range, unknown container. */
  notFound: 4,
  /** The registry cannot be reached. */
  unavailable: 5,
  /** The thing to create exists already (a CTID in use). */
  conflict: 6,
  /** Interrupted by SIGINT/SIGTERM; everything was undone. */
  interrupted: 130,
} as const;

export class VztplError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = ExitCode.failure, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Invalid input: names the file, line and field (or argument) at fault. */
export class UsageError extends VztplError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.usage, options);
  }
}

export class MissingToolError extends VztplError {
  readonly program: string;
  readonly debianPackage: string;
  constructor(program: string, debianPackage: string) {
    super(`${program} is not installed on this host: install it with "apt-get install ${debianPackage}"`, ExitCode.missingTool);
    this.program = program;
    this.debianPackage = debianPackage;
  }
}

export class InterruptedError extends VztplError {
  constructor(signal: string) {
    super(`interrupted by ${signal}; mounts and partial output were removed`, ExitCode.interrupted);
  }
}

/** A command that failed: names what ran, its exit code and its last lines of output. */
export class CommandError extends VztplError {
  readonly what: string;
  readonly exitCodeOfCommand: number | undefined;
  readonly tail: string[];
  constructor(what: string, exitCodeOfCommand: number | undefined, tail: string[]) {
    const status = exitCodeOfCommand === undefined ? 'was killed' : `exited with code ${exitCodeOfCommand}`;
    const lines = tail.length ? `\nlast output lines:\n${tail.map((l) => `  | ${l}`).join('\n')}` : '';
    super(`${what} ${status}${lines}`);
    this.what = what;
    this.exitCodeOfCommand = exitCodeOfCommand;
    this.tail = tail;
  }
}
