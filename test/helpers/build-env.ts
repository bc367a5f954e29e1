// Shared pieces of the builder's end-to-end tests: the step/package cache every test file uses
// (so .debs, apt lists and the bootstrap layer are downloaded and built once), running the CLI
// as a child process, its NDJSON events, and probes for what a build must not leave behind
// (mounts in any namespace, processes, work dirs).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProgressEvent } from '../../common/progress.ts';

/** Root of everything the e2e tests keep between runs. */
export const TEST_ROOT = '/var/tmp/vztpl-test';
/** The step and package cache shared by the build tests (vztpl build --cache-dir). */
export const BUILD_CACHE = join(TEST_ROOT, 'build-cache');
/** The CLI's entry point, run from source by Node 24. */
export const CLI = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** chroot is in /usr/sbin: a PATH for running host tools and chroots from the tests. */
export const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const isRoot = process.getuid?.() === 0;

/** A fresh directory under TEST_ROOT (same filesystem as the cache, not a tmpfs). */
export async function tempDir(prefix: string): Promise<string> {
  await mkdir(TEST_ROOT, { recursive: true });
  return mkdtemp(join(TEST_ROOT, `${prefix}-`));
}

/** Writes files (relative path -> content) under dir. */
export async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
}

export type Event = ProgressEvent & { time: string };
export type StepDone = Extract<Event, { event: 'step-done' }>;
export type BuildDone = Extract<Event, { event: 'build-done' }>;

/** Parses NDJSON progress: every non-empty line must be one JSON event. */
export function parseEvents(stdout: string): Event[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Event);
}

export const stepDones = (events: Event[]) => events.filter((e): e is StepDone => e.event === 'step-done');
export const buildDone = (events: Event[]) => events.find((e): e is BuildDone => e.event === 'build-done');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

export interface CliOptions {
  env?: Record<string, string>;
  /** Replace the environment instead of extending it. */
  cleanEnv?: boolean;
  cwd?: string;
}

/** Spawns `node cli/main.ts ARGS`; the caller gets the child and a promise of its result. */
export function spawnCli(args: readonly string[], opts: CliOptions = {}): { child: ChildProcess; result: Promise<CliResult>; stdout: () => string } {
  const started = performance.now();
  const env = opts.cleanEnv ? { ...opts.env } : { ...process.env, PATH: `/usr/local/bin:${process.env.PATH ?? HOST_PATH}`, ...opts.env };
  const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const result = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, seconds: (performance.now() - started) / 1000 }));
  });
  return { child, result, stdout: () => stdout };
}

export function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  return spawnCli(args, opts).result;
}

/** `vztpl build RECIPE --cache-dir CACHE -o OUT --json ...`; throws with stderr when it fails. */
export async function cliBuild(recipe: string, out: string, extra: readonly string[] = [], cacheDir = BUILD_CACHE): Promise<{ events: Event[]; result: CliResult; done: BuildDone }> {
  const result = await runCli(['build', recipe, '--cache-dir', cacheDir, '-o', out, '--json', ...extra]);
  if (result.code !== 0) throw new Error(`vztpl build ${recipe} exited with ${result.code}:\n${result.stderr}`);
  const events = parseEvents(result.stdout);
  const done = buildDone(events);
  if (!done) throw new Error(`vztpl build ${recipe}: no build-done event`);
  return { events, result, done };
}

/** Resolves when `predicate` holds for some event printed so far; rejects after timeoutMs. */
export async function waitForEvent(stdout: () => string, predicate: (e: Event) => boolean, timeoutMs: number, exited?: Promise<unknown>): Promise<Event> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void exited?.then(() => (gone = true));
  for (;;) {
    const text = stdout();
    const complete = text.slice(0, text.lastIndexOf('\n') + 1);
    const found = parseEvents(complete).find(predicate);
    if (found) return found;
    if (gone) throw new Error('the process exited before the event');
    if (Date.now() > deadline) throw new Error(`no such event within ${timeoutMs} ms; output so far:\n${text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Mount table lines, in every mount namespace on the machine, that mention one of `needles`.
 * A build's mounts live in private namespaces, so the host's /proc/mounts alone would never
 * show a leaked one: each process's mountinfo is read, one per namespace.
 */
export async function mountsMentioning(...needles: string[]): Promise<string[]> {
  const seen = new Set<string>();
  const found: string[] = [];
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n));
  for (const pid of ['self', ...pids]) {
    const ns = await readlink(`/proc/${pid}/ns/mnt`).catch(() => undefined);
    if (!ns || seen.has(ns)) continue;
    seen.add(ns);
    const info = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
    for (const line of info.split('\n')) {
      if (needles.some((n) => line.includes(n))) found.push(`${ns} (pid ${pid}): ${line}`);
    }
  }
  return found;
}

/** Processes whose argv (joined by spaces) contains `needle`, as "pid: argv". */
export async function processesMatching(needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    if (Number(pid) === process.pid) continue;
    const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    const joined = argv.split('\0').filter(Boolean).join(' ');
    if (joined.includes(needle)) found.push(`${pid}: ${joined}`);
  }
  return found;
}

/** Entries of a build cache's tmp/ dir (work dirs are named <pid>-<random>). */
export async function cacheTmpEntries(cacheDir = BUILD_CACHE): Promise<string[]> {
  return readdir(join(cacheDir, 'tmp')).catch(() => []);
}

/** Names in out's parent that are `out` or its temporaries (out.tmp-PID, out.old-PID). */
export async function outputLeftovers(out: string): Promise<string[]> {
  const base = out.split('/').pop()!;
  return (await readdir(dirname(out)).catch(() => [] as string[])).filter((n) => n === base || n.startsWith(`${base}.`));
}

/** Runs a program to completion; resolves with its exit code and output (no throwing). */
export function exec(file: string, args: readonly string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env ?? { PATH: HOST_PATH, LC_ALL: 'C' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    // A program that exits without reading its input closes the pipe: not an error here.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Like exec, but throws unless the program exits 0; resolves with stdout. */
export async function execOk(file: string, args: readonly string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<string> {
  const r = await exec(file, args, opts);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited with ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}
