// Progress of long work: step lines with timings for people, NDJSON events for programs.
import type { Writable } from 'node:stream';

export type ProgressEvent =
  | { event: 'build-start'; name: string; version: string; recipe: string; steps: number }
  | { event: 'step-start'; index: number; total: number; title: string }
  | { event: 'step-log'; index: number; line: string }
  | {
      event: 'step-done';
      index: number;
      total: number;
      title: string;
      cached: boolean;
      seconds: number;
      emptyLayer: boolean;
      digest?: string;
      size?: number;
    }
  | { event: 'build-done'; name: string; version: string; digest: string; out: string; layers: number; size: number; packages: number; seconds: number }
  | { event: 'message'; message: string }
  | { event: 'error'; message: string; exitCode: number };

export interface Reporter {
  emit(event: ProgressEvent): void;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function jsonReporter(out: Writable): Reporter {
  return { emit: (event) => out.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`) };
}

/** Step lines; on a terminal the current step shows its latest output line in place. */
export function lineReporter(out: Writable & { isTTY?: boolean; columns?: number }): Reporter {
  const tty = Boolean(out.isTTY);
  let live = false;
  const clearLive = () => {
    if (live) out.write('\r\x1b[K');
    live = false;
  };
  return {
    emit(e) {
      switch (e.event) {
        case 'build-start':
          out.write(`Building ${e.name} ${e.version} from ${e.recipe} (${e.steps} steps)\n`);
          break;
        case 'step-start':
          if (!tty) out.write(`[${e.index}/${e.total}] ${e.title} ...\n`);
          break;
        case 'step-log':
          if (tty) {
            const width = Math.max(20, (out.columns ?? 100) - 8);
            out.write(`\r\x1b[K\x1b[2m      ${e.line.replace(/[\r\n\t]/g, ' ').slice(0, width)}\x1b[0m`);
            live = true;
          }
          break;
        case 'step-done': {
          clearLive();
          const what = e.cached ? 'cached' : `${e.seconds.toFixed(1)}s`;
          const layer = e.emptyLayer ? 'no changes' : `${formatBytes(e.size ?? 0)} ${e.digest?.slice(7, 19) ?? ''}`;
          out.write(`[${e.index}/${e.total}] ${e.title}: ${what}, ${layer}\n`);
          break;
        }
        case 'build-done':
          clearLive();
          out.write(
            `Built ${e.name}:${e.version} in ${e.seconds.toFixed(1)}s: ${e.digest}\n  ${e.layers} layers, ${formatBytes(e.size)}, ${e.packages} packages -> ${e.out}\n`,
          );
          break;
        case 'error':
          clearLive();
          break;
        case 'message':
          clearLive();
          out.write(`${e.message}\n`);
          break;
      }
    },
  };
}

export const silentReporter: Reporter = { emit: () => undefined };
