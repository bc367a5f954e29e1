// Node's fs and util for the modules on the `create` path, taken with process.getBuiltinModule
// rather than `import`: an ES module import of a builtin builds its namespace from every export,
// getters included, so `import ... from 'node:fs'` loads fs/promises, readline and streams
// (through the fs.promises getter) and 'node:util' loads streams and worker_threads: about 5 ms
// of a `vztpl create` that takes tens. Other modules import builtins the usual way.
export const fs = process.getBuiltinModule('node:fs');
export const util = process.getBuiltinModule('node:util');

/** The names in `dir`, or none when it cannot be read (missing: nothing was put there yet). */
export function namesIn(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
