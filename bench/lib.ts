// Small helpers for the benchmarks: statistics, machine facts, timed child processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { execFileSync } from 'node:child_process';

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Machine {
  cores: number;
  cpu: string;
  kernel: string;
  node: string;
  date: string;
  /** /proc/loadavg's 1, 5 and 15 minute averages. */
  load: string;
}

export function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

export function machine(): Machine {
  let cores = availableParallelism();
  try {
    cores = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    /* keep Node's count */
  }
  const cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  return { cores, cpu, kernel, node: process.version, date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), load: loadAverage() };
}

/** Seconds, with a fixed number of decimals. */
export function secs(ms: number, digits = 2): string {
  return `${(ms / 1000).toFixed(digits)} s`;
}

export function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}x`;
}

/** The children currently running, so that an interrupt can end them. */
export const running = new Set<ChildProcess>();

export interface ProcessRun {
  ms: number;
  code: number | null;
  /** Time (ms after spawn) of each stdout line, with the line. */
  lines: { t: number; line: string }[];
  stderr: string;
}

/** Runs a program to completion, timing it from spawn to exit, stamping each stdout line. */
export function runTimed(file: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ProcessRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    const lines: ProcessRun['lines'] = [];
    let pending = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const t = performance.now() - t0;
      const parts = (pending + chunk).split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) lines.push({ t, line });
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-20000);
    });
    child.once('error', (err) => {
      running.delete(child);
      reject(err);
    });
    child.once('close', (code) => {
      const ms = performance.now() - t0;
      running.delete(child);
      if (pending) lines.push({ t: ms, line: pending });
      resolve({ ms, code, lines, stderr });
    });
  });
}

/** Like runTimed, but a non-zero exit is an error showing the end of stderr. */
export async function runChecked(what: string, file: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ProcessRun> {
  const r = await runTimed(file, args, opts);
  if (r.code !== 0) throw new Error(`${what} exited with ${r.code}:\n${r.stderr.split('\n').slice(-15).join('\n')}`);
  return r;
}

export async function timeAsync<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** A markdown table, columns padded so it also reads well in a terminal. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  // A | inside a cell would end it.
  rows = rows.map((r) => r.map((c) => c.replace(/\|/g, '\\|')));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** Runs a benchmark's main; on failure prints the error, runs its cleanup, and exits 1. */
export function runBench(main: () => Promise<void>, cleanup: () => Promise<unknown>): void {
  main().catch(async (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanup().catch(() => undefined);
    process.exit(1);
  });
}

