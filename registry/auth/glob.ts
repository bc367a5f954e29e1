// Repository patterns of the users file: the matcher lives in format/glob.ts, shared with the
// host's trust policy (cache/ may not import registry/).
export { compilePattern, globRegExp, isValidPattern, matchesEverything } from '../../format/glob.ts';
