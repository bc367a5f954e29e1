// Argument parsing shared by the commands: node's parseArgs, with errors as UsageError.
import type { ParseArgsConfig } from 'node:util';
import { util } from '../common/builtins.ts';
import { UsageError } from '../common/errors.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseCommandArgs<O extends Options>(command: string, argv: string[], options: O, help: string) {
  try {
    const parsed = util.parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    if ((parsed.values as { help?: boolean }).help) {
      process.stdout.write(`${help.trim()}\n`);
      return undefined;
    }
    return parsed;
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message}\n\n${help.trim()}`);
  }
}

/** An AbortSignal fired by SIGINT/SIGTERM, so long work can undo what it started. */
export function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((sig) => {
    const handler = async () => {
      const { InterruptedError } = await import('../common/errors.ts');
      controller.abort(new InterruptedError(sig));
    };
    // `on`, not `once`: execa's child cleanup (signal-exit) re-raises a signal that has no other
    // listener left, and a `once` listener is removed before it runs, so the process would die
    // by the signal (exit 143) before the build could undo anything.
    process.on(sig, handler);
    return [sig, handler] as const;
  });
  return { signal: controller.signal, dispose: () => handlers.forEach(([sig, h]) => process.off(sig, h)) };
}
