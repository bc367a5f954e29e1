import { existsSync } from 'node:fs';

/** "DIR:REF" -> { dir, ref }, unless the whole argument is an existing directory. */
export function splitLayoutRef(target: string): { dir: string; ref?: string } {
  const colon = target.lastIndexOf(':');
  if (colon <= 0 || existsSync(target)) return { dir: target };
  return { dir: target.slice(0, colon), ref: target.slice(colon + 1) };
}
