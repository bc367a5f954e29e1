// Runs a command in private mount and pid namespaces, so that every mount it makes (overlay,
// /proc, /sys, /dev, binds) exists only inside that namespace and disappears with it: when the
// command ends, fails, is interrupted, or vztpl itself is killed (-9 included, through the
// parent-death signal), the kernel unmounts everything. Nothing can leak into the host's table.
import { requirePrograms } from './programs.ts';

const TOOLS = { unshare: 'util-linux', setpriv: 'util-linux' } as const;

/** Program and leading arguments that wrap `argv` in fresh namespaces. */
export function isolated(argv: readonly string[]): [string, string[]] {
  requirePrograms(TOOLS);
  return [
    'setpriv',
    ['--pdeathsig', 'KILL', 'unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--', ...argv],
  ];
}
