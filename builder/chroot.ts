// Runs one build step against a layer stack: an overlayfs of the lower layers' trees with the
// step's upper dir on top, /proc, /sys, /dev and the build's resolv.conf inside, then the step's
// commands, chrooted. Everything happens in private namespaces (common/isolate.ts), so no mount
// outlives the step, whatever happens to it or to vztpl.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isolated } from '../common/isolate.ts';
import { run } from '../common/run.ts';

export interface Bind {
  /** Host directory or file. */
  host: string;
  /** Absolute path inside the root; it must already exist in the stack (or the injected layer). */
  target: string;
  readonly?: boolean;
}

export interface StackMount {
  /** Lower layers' trees, topmost first. */
  lowers: readonly string[];
  /** Writable upper dir (the step's layer) and overlayfs work dir, on one filesystem. */
  upper: string;
  work: string;
  /** Empty directory to mount the stack on. */
  merged: string;
  binds?: readonly Bind[];
  /** Mount /proc, /sys and /dev inside (off where the host's dnf makes its own /dev nodes). */
  system?: boolean;
}

export interface StepScript {
  mount: StackMount;
  /**
   * Shell commands run on the host after the mounts, with $ROOT set to the mounted stack and
   * $1.. the given args. Use `chroot "$ROOT" ...` to run inside the template.
   */
  script: string;
  args?: readonly string[];
  what: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
  env?: Record<string, string>;
}

function q(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The mount part of the namespace script. Paths are quoted; overlay options are checked. */
export function mountScript(m: StackMount): string {
  for (const dir of [...m.lowers, m.upper, m.work]) {
    if (/[,:\\]/.test(dir)) throw new Error(`overlayfs cannot use a path with ',' ':' or '\\': ${dir}`);
  }
  // redirect_dir/metacopy off: an upper dir must hold whole files and real directories to be a
  // self-contained layer; index/xino off: no inode bookkeeping tied to this mount.
  const options = `lowerdir=${m.lowers.join(':')},upperdir=${m.upper},workdir=${m.work},redirect_dir=off,metacopy=off,index=off,xino=off`;
  const lines = [
    `mount -t overlay vztpl-step -o ${q(options)} "$ROOT"`,
  ];
  if (m.system !== false) {
    lines.push(
      'mount -t proc proc "$ROOT/proc"',
      'mount --bind /sys "$ROOT/sys" && mount -o remount,bind,ro "$ROOT/sys"',
      'mount --bind /dev "$ROOT/dev"',
      '[ -d /dev/pts ] && [ -d "$ROOT/dev/pts" ] && mount --bind /dev/pts "$ROOT/dev/pts" || true',
    );
  }
  for (const b of m.binds ?? []) {
    const target = `"$ROOT"${q(b.target)}`;
    lines.push(`mount --bind ${q(b.host)} ${target}`);
    if (b.readonly) lines.push(`mount -o remount,bind,ro ${target}`);
  }
  return lines.join('\n');
}

export async function runStepScript(s: StepScript): Promise<string> {
  await mkdir(s.mount.merged, { recursive: true });
  const scriptFile = join(s.mount.work, '..', `step-${process.pid}.sh`);
  const body = ['set -eu', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `ROOT=${q(s.mount.merged)}`, mountScript(s.mount), s.script, ''].join('\n');
  await writeFile(scriptFile, body, { mode: 0o700 });
  const [file, argv] = isolated(['/bin/sh', scriptFile, ...(s.args ?? [])]);
  return run(file, argv, { what: s.what, log: s.log, signal: s.signal, env: s.env, killSignal: 'SIGKILL' });
}

/** The environment a step's commands see inside the template: nothing of the host's. */
export function chrootEnv(epoch: number, extra: Record<string, string>): string[] {
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    DEBIAN_FRONTEND: 'noninteractive',
    SOURCE_DATE_EPOCH: String(epoch),
    // Perl randomizes hash order per process; debconf writes its databases in hash order.
    PERL_HASH_SEED: '0',
    PERL_PERTURB_KEYS: '0',
    ...extra,
  };
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/**
 * `env -i VAR=... chroot "$ROOT" <argv>` as shell words: the host's env and chroot set up the
 * environment, so the template needs nothing but the program it runs.
 */
export function chrootCommand(env: readonly string[], argv: readonly string[]): string {
  return ['env', '-i', ...env.map(q), 'chroot', '"$ROOT"', ...argv.map(q)].join(' ');
}

export { q as shellQuote };
