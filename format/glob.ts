// Name patterns, as the registry's users-file scopes and the host's trust policy write them:
// `*` matches within one path component, `**` across components (`acme/**` is everything below
// acme/, `**` is everything), `?` one character of a component. Anything else is literal.
// Compiled once, anchored at both ends. Shared by registry/auth (repository scopes) and cache/
// (trust policy entries, which name REGISTRY/NAME and so may hold a host's `:PORT`).

const PATTERN = /^[a-z0-9._\-/*?]+$/;

/** A repository pattern of the users file: lower-case names, /, *, ** and ?. */
export function isValidPattern(pattern: string): boolean {
  return pattern.length <= 255 && PATTERN.test(pattern) && !/\*{3,}/.test(pattern);
}

/** The anchored expression of a pattern; every character but `*`, `**` and `?` is literal. */
export function globRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; ) {
    if (pattern.startsWith('**/', i)) {
      source += '(?:.*/)?';
      i += 3;
    } else if (pattern.startsWith('**', i)) {
      source += '.*';
      i += 2;
    } else if (pattern[i] === '*') {
      source += '[^/]*';
      i++;
    } else if (pattern[i] === '?') {
      source += '[^/]';
      i++;
    } else {
      source += pattern[i]!.replace(/[\\^$.|+()[\]{}\-/]/g, (c) => `\\${c}`);
      i++;
    }
  }
  return new RegExp(`^${source}$`);
}

/** A repository pattern of the users file, compiled; an invalid one throws. */
export function compilePattern(pattern: string): RegExp {
  if (!isValidPattern(pattern)) throw new Error(`invalid repository pattern ${JSON.stringify(pattern)}: use lower-case names, /, * (within a component) and ** (across components)`);
  return globRegExp(pattern);
}

/** Whether a pattern matches every repository name (`**`): the registry-wide patterns. */
export function matchesEverything(pattern: string): boolean {
  return pattern === '**';
}
