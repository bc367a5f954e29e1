// Loads recipe files: YAML to a validated Recipe, with every problem reported as
// file:line:column: field.path: message, all of them at once, sorted by line.
import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { UsageError } from '../../common/errors.ts';
import { closest } from './nearest.ts';
import { debianTools, recipeSchema, templateName, type LoadedRecipe, type Recipe } from './schema.ts';
import { archives, suitePattern, suiteProblem } from './suites.ts';

/** One problem in a recipe file. Lines and columns count from 1. */
export interface RecipeIssue {
  file: string;
  line: number;
  column: number;
  /** Field path as authors read it: steps[2].copy.mode; empty for the file as a whole. */
  field: string;
  message: string;
}

/** A recipe file with problems: a UsageError (exit code 2) that also lists them one by one. */
export class RecipeError extends UsageError {
  readonly issues: readonly RecipeIssue[];
  constructor(issues: RecipeIssue[], options?: ErrorOptions) {
    super(issues.map(formatIssue).join('\n'), options);
    this.issues = issues;
  }
}

export function formatIssue(i: RecipeIssue): string {
  return `${i.file}:${i.line}:${i.column}: ${i.field ? `${i.field}: ` : ''}${i.message}`;
}

type PathKey = string | number;

/** The YAML source of a parsed recipe, to point later errors (resolveParent) at a line. */
interface Source {
  doc: Document.Parsed;
  text: string;
  lines: LineCounter;
  display: string;
}
const sources = new WeakMap<Recipe, Source>();

// --- parsing -------------------------------------------------------------------------------

interface Analysis {
  source: Source;
  /** The document as plain data (undefined after a YAML syntax error). */
  data: unknown;
  recipe?: Recipe;
  issues: RecipeIssue[];
}

function analyze(text: string, display: string): Analysis {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const source: Source = { doc, text, lines, display };
  const at = (offset: number) => {
    const { line, col } = lines.linePos(offset);
    return { file: display, line, column: col };
  };
  const yamlProblems = [...doc.errors, ...doc.warnings];
  if (yamlProblems.length) {
    const issues = yamlProblems.map((e) => ({ ...at(e.pos[0]), field: '', message: `invalid YAML: ${yamlMessage(e.code, e.message)}` }));
    return { source, data: undefined, issues: sortIssues(issues) };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 }) ?? null;
  } catch (err) {
    // Too many aliases (a "billion laughs" document) and the like.
    const issue = { ...at(0), field: '', message: `invalid YAML: ${(err as Error).message}` };
    return { source, data: undefined, issues: [issue] };
  }
  const result = recipeSchema.safeParse(data, { error: errorMap });
  const schemaIssues = result.success ? [] : result.error.issues.flatMap((iss) => zodIssueToRecipeIssues(iss, source));
  const issues = sortIssues([...schemaIssues, ...checkSuite(data, source)]);
  return { source, data, recipe: result.success ? result.data : undefined, issues };
}

/**
 * A Debian or Ubuntu suite must be one the bootstrappers know for the mirror's distribution
 * (suites.ts): bookwrom, or jammy on a Debian mirror, would fail only at build time, on a 404.
 * Works on the raw data, so that it is reported with the schema's problems, and tells a mirror
 * the recipe names from the default one. A suite the schema refuses is left to the schema.
 */
function checkSuite(data: unknown, source: Source): RecipeIssue[] {
  const bootstrap = isRecord(data) && isRecord(data['bootstrap']) ? data['bootstrap'] : undefined;
  if (!bootstrap || !(debianTools as readonly unknown[]).includes(bootstrap['tool'])) return [];
  const { suite, mirror } = bootstrap;
  if (typeof suite !== 'string' || !suitePattern.test(suite)) return [];
  // A mirror that is not a string is the schema's to report; its distribution is then unknown.
  const problem = mirror === undefined ? suiteProblem(suite, archives.debian.mirror, false) : suiteProblem(suite, typeof mirror === 'string' ? mirror : '', true);
  if (problem === undefined) return [];
  const where: PathKey[] = ['bootstrap', 'suite'];
  return [{ ...locate(source, where, 'value'), field: formatPath(where), message: problem }];
}

function yamlMessage(code: string, message: string): string {
  if (code === 'MULTIPLE_DOCS') return 'a recipe file holds a single YAML document (remove the second ---)';
  if (code === 'DUPLICATE_KEY') return 'this key appears twice in the same mapping';
  return message;
}

/** Parses and validates recipe text; `file` is used in messages only. Throws RecipeError. */
export function parseRecipe(text: string, file: string): Recipe {
  const a = analyze(text, file);
  if (a.issues.length || !a.recipe) throw new RecipeError(a.issues);
  sources.set(a.recipe, a.source);
  return a.recipe;
}

/** Reads, parses and validates a recipe file, and checks the files its copy steps name. */
export async function loadRecipe(file: string): Promise<LoadedRecipe> {
  const abs = path.resolve(file);
  const display = displayPath(abs);
  let bytes: Buffer;
  try {
    bytes = await readFile(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such recipe file' : code === 'EISDIR' ? 'is a directory, not a recipe file' : `cannot read the recipe: ${(err as Error).message}`;
    throw new UsageError(`${display}: ${why}`, { cause: err });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new UsageError(`${display}: not a text file (a recipe is UTF-8 YAML)`, { cause: err });
  }
  const a = analyze(text, display);
  const issues = a.data === undefined ? a.issues : sortIssues([...a.issues, ...(await checkCopySources(a.data, path.dirname(abs), a.source))]);
  if (issues.length || !a.recipe) throw new RecipeError(issues);
  sources.set(a.recipe, a.source);
  return { recipe: a.recipe, file: abs, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

/** Absolute path of a copy step's source: copy.src is relative to the recipe's directory. */
export function copySourcePath(loaded: LoadedRecipe, src: string): string {
  return path.resolve(path.dirname(loaded.file), src);
}

/**
 * Each copy step's src must name an existing file or directory inside the recipe's directory:
 * relative, no way out with "..", and no symbolic link that leads out of it either.
 * Works on the raw data, so these problems are reported together with the schema's.
 */
async function checkCopySources(data: unknown, dir: string, source: Source): Promise<RecipeIssue[]> {
  const steps = isRecord(data) && Array.isArray(data['steps']) ? data['steps'] : [];
  const issues: RecipeIssue[] = [];
  let realDir: string | undefined;
  for (const [index, step] of steps.entries()) {
    const src = isRecord(step) && isRecord(step['copy']) ? step['copy']['src'] : undefined;
    if (typeof src !== 'string' || src === '') continue;
    const where: PathKey[] = ['steps', index, 'copy', 'src'];
    const problem = (message: string) => issues.push({ ...locate(source, where, 'value'), field: formatPath(where), message });
    if (path.isAbsolute(src)) {
      problem(`must be a path relative to the recipe's directory, not ${src}`);
      continue;
    }
    const full = path.resolve(dir, src);
    if (escapes(dir, full)) {
      problem(`${src} is outside the recipe's directory: a recipe may only copy files next to it`);
      continue;
    }
    try {
      await stat(full);
    } catch {
      problem(`no such file: ${displayPath(full)}`);
      continue;
    }
    realDir ??= await realpath(dir);
    if (escapes(realDir, await realpath(full))) {
      problem(`${src} leads outside the recipe's directory through a symbolic link`);
    }
  }
  return issues;
}

function escapes(dir: string, target: string): boolean {
  const rel = path.relative(dir, target);
  return rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel);
}

// --- parents -------------------------------------------------------------------------------

/**
 * The recipe a flavor (`from:`) builds on. `from` is a template name, looked up as <name>.yaml
 * in the recipe's directory, or a path to a .yaml file relative to it. The whole chain of
 * ancestors is loaded and checked (existence, cycles, architecture), so a valid answer means
 * every ancestor is valid too. Throws a plain Error for a recipe without `from`.
 */
export async function resolveParent(loaded: LoadedRecipe): Promise<LoadedRecipe> {
  const chain = await resolveAncestors(loaded);
  const parent = chain.at(-1);
  if (!parent) throw new Error(`${displayPath(loaded.file)} has no from: it is a base recipe`);
  return parent;
}

/** Every ancestor of a recipe, the base (the one with `bootstrap`) first, the direct parent last. */
export async function resolveAncestors(loaded: LoadedRecipe): Promise<LoadedRecipe[]> {
  const ancestors: LoadedRecipe[] = [];
  const seen = [await identity(loaded.file)];
  let current = loaded;
  while ('from' in current.recipe) {
    const from = current.recipe.from;
    const at = await fromLocation(current);
    const fail = (message: string) => new RecipeError([{ ...at, field: 'from', message }]);
    const file = await findParentFile(from, path.dirname(current.file));
    if (typeof file !== 'string') {
      throw fail(`no recipe for ${JSON.stringify(from)}: ${displayPath(file.looked)} does not exist`);
    }
    const id = await identity(file);
    if (seen.includes(id)) {
      const names = [...seen.slice(seen.indexOf(id)), id].map((f) => displayPath(f));
      throw fail(`${JSON.stringify(from)} makes a cycle of parents: ${names.join(' -> ')}`);
    }
    seen.push(id);
    const parent = await loadRecipe(file);
    if (parent.recipe.arch !== current.recipe.arch) {
      throw fail(`parent ${parent.recipe.name} is for ${parent.recipe.arch}, this recipe is for ${current.recipe.arch}`);
    }
    ancestors.unshift(parent);
    current = parent;
  }
  return ancestors;
}

async function findParentFile(from: string, dir: string): Promise<string | { looked: string }> {
  const isPath = /\.ya?ml$/.test(from) || !templateName.safeParse(from).success;
  const file = isPath ? path.resolve(dir, from) : path.join(dir, `${from}.yaml`);
  try {
    if ((await stat(file)).isFile()) return file;
  } catch {
    // not found
  }
  return { looked: file };
}

async function identity(file: string): Promise<string> {
  try {
    return await realpath(file);
  } catch {
    return path.resolve(file);
  }
}

async function fromLocation(loaded: LoadedRecipe): Promise<{ file: string; line: number; column: number }> {
  let source = sources.get(loaded.recipe);
  if (!source) {
    // A LoadedRecipe made elsewhere: read the file again for the line numbers.
    const lines = new LineCounter();
    const text = await readFile(loaded.file, 'utf8').catch(() => '');
    source = { doc: parseDocument(text, { lineCounter: lines }), text, lines, display: displayPath(loaded.file) };
  }
  return locate(source, ['from'], 'value');
}

// --- issues and their places -----------------------------------------------------------------

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A path as printed in messages: relative to the working directory when inside it. */
function displayPath(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : abs;
}

export function formatPath(p: readonly PathKey[]): string {
  let out = '';
  for (const k of p) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(k)) out += out ? `.${k}` : k;
    else out += `[${JSON.stringify(k)}]`;
  }
  return out;
}

function sortIssues(issues: RecipeIssue[]): RecipeIssue[] {
  const seen = new Set<string>();
  return issues
    .map((issue, order) => ({ issue, order }))
    .sort((a, b) => a.issue.line - b.issue.line || a.issue.column - b.issue.column || a.order - b.order)
    .map(({ issue }) => issue)
    .filter((i) => {
      const key = formatIssue(i);
      return seen.has(key) ? false : (seen.add(key), true);
    });
}

/**
 * Where a path points in the YAML. 'value' gives the value's position and 'key' the key's;
 * a path that does not exist (a missing field) gives its nearest existing parent: the key that
 * holds it, the list item, or the start of the document's mapping.
 */
function locate(source: Source, p: readonly PathKey[], want: 'value' | 'key'): { file: string; line: number; column: number } {
  const pos = (offset: number) => {
    const { line, col } = source.lines.linePos(offset);
    return { file: source.display, line, column: col };
  };
  const start = (n: unknown): number | undefined => (n && typeof n === 'object' && 'range' in n ? (n as YamlNode).range?.[0] : undefined);
  let node: unknown = source.doc.contents;
  let anchor = start(node) ?? 0;
  for (const [i, seg] of p.entries()) {
    if (isAlias(node)) node = node.resolve(source.doc);
    if (isMap(node)) {
      const pair = node.items.find((it) => (isScalar(it.key) ? String(it.key.value) : String(it.key)) === String(seg));
      if (!pair) return pos(anchor);
      const keyStart = start(pair.key);
      if (i === p.length - 1 && want === 'key' && keyStart !== undefined) return pos(keyStart);
      anchor = keyStart ?? anchor;
      node = pair.value;
      const valueStart = start(node);
      if (i === p.length - 1) return pos(valueStart ?? anchor);
    } else if (isSeq(node) && typeof seg === 'number') {
      const item: unknown = node.items[seg];
      const itemStart = start(item);
      if (itemStart === undefined) return pos(anchor);
      anchor = itemStart;
      node = item;
    } else {
      return pos(anchor);
    }
  }
  return pos(start(node) ?? anchor);
}

/** The YAML text of the value at a path, as written (9.10 stays 9.10). */
function sourceText(source: Source, p: readonly PathKey[]): string | undefined {
  const node = source.doc.getIn(p as PathKey[], true);
  const range = isScalar(node) ? node.range : undefined;
  return range ? source.text.slice(range[0], range[1]) : undefined;
}

const UNKNOWN_FIELD = 'unknown field; allowed: ';

function zodIssueToRecipeIssues(iss: z.core.$ZodIssue, source: Source): RecipeIssue[] {
  const p = iss.path.filter((k): k is PathKey => typeof k !== 'symbol');
  if (iss.code === 'unrecognized_keys') {
    const allowed = iss.message.startsWith(UNKNOWN_FIELD) ? iss.message.slice(UNKNOWN_FIELD.length).split(', ') : [];
    return iss.keys.map((key) => {
      const where = [...p, key];
      const guess = closest(key, allowed);
      const hint = guess ? `; did you mean ${guess}?` : allowed.length ? `; the fields here are ${allowed.join(', ')}` : '';
      return { ...locate(source, where, 'key'), field: formatPath(where), message: `unknown field${hint}` };
    });
  }
  if (iss.code === 'invalid_key') {
    // A record's key (an environment variable name): point at the key itself.
    const inner = iss.issues[0]?.message ?? 'invalid name';
    return [{ ...locate(source, p, 'key'), field: formatPath(p), message: inner }];
  }
  if (iss.code === 'invalid_type' && p.length === 0) {
    return [{ ...locate(source, p, 'value'), field: '', message: 'a recipe is a YAML mapping with name, version, and bootstrap or from' }];
  }
  let message = iss.message;
  if (iss.code === 'invalid_type' && iss.expected === 'string') {
    // YAML reads 9, 9.10 and true as a number or a boolean; quotes keep the text as written.
    const value: unknown = source.doc.getIn(p as PathKey[]);
    const written = sourceText(source, p);
    if ((typeof value === 'number' || typeof value === 'boolean') && written !== undefined) {
      message = `must be a string: YAML reads ${written} as a ${typeof value}, so write it in quotes: "${written}"`;
    }
  }
  return [{ ...locate(source, p, 'value'), field: formatPath(p), message }];
}

/** Messages in an author's words; schemas' own messages (regex hints) take precedence. */
function errorMap(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'unrecognized_keys': {
      const shape = (iss.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
      return UNKNOWN_FIELD + Object.keys(shape ?? {}).join(', ');
    }
    case 'invalid_type': {
      if (iss.input === undefined) return 'required field is missing';
      const expected = { string: 'a string', number: 'a number', int: 'a whole number', boolean: 'true or false', array: 'a list', object: 'a mapping', record: 'a mapping' }[
        iss.expected as string
      ];
      return `must be ${expected ?? iss.expected}, not ${describe(iss.input)}`;
    }
    case 'invalid_value':
      return `must be ${iss.values.length === 1 ? JSON.stringify(iss.values[0]) : `one of ${iss.values.map((v) => String(v)).join(', ')}`}, not ${describe(iss.input)}`;
    case 'too_small':
      if (iss.origin === 'array') return `must list at least ${String(iss.minimum)} item${Number(iss.minimum) === 1 ? '' : 's'}`;
      if (iss.origin === 'string') return 'must not be empty';
      if (iss.origin === 'number') return `must be at least ${String(iss.minimum)}`;
      return undefined;
    case 'invalid_format':
      if (iss.format === 'url') return `must be a URL such as http://deb.debian.org/debian, not ${describe(iss.input)}`;
      return undefined;
    default:
      return undefined;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'empty';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  return `the ${typeof v} ${String(v)}`;
}
