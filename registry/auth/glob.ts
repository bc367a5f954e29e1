// Repository patterns of the users file: `*` matches within one path component, `**` across
// components (`acme/**` is everything below acme/, `**` is every repository), `?` one character
// of a component. Anything else is literal. Patterns are compiled once, anchored at both ends.

const PATTERN = /^[a-z0-9._\-/*?]+$/;

export function isValidPattern(pattern: string): boolean {
  return pattern.length <= 255 && PATTERN.test(pattern) && !/\*{3,}/.test(pattern);
}

export function compilePattern(pattern: string): RegExp {
  if (!isValidPattern(pattern)) throw new Error(`invalid repository pattern ${JSON.stringify(pattern)}: use lower-case names, /, * (within a component) and ** (across components)`);
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
      source += pattern[i]!.replace(/[.\-/]/g, (c) => `\\${c}`);
      i++;
    }
  }
  return new RegExp(`^${source}$`);
}

/** Whether a pattern matches every repository name (`**`): the registry-wide patterns. */
export function matchesEverything(pattern: string): boolean {
  return pattern === '**';
}
