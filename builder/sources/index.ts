// The bootstrap sources by recipe `bootstrap.tool`.
import type { BootstrapSpec } from '../recipe/schema.ts';
import { debootstrapSource } from './debootstrap.ts';
import { dnfSource, yumSource } from './dnf.ts';
import { mmdebstrapSource } from './mmdebstrap.ts';
import type { BootstrapSource } from './source.ts';

type Tool = BootstrapSpec['tool'];
type SpecMember<U, T> = U extends { tool: infer K } ? (T extends K ? U : never) : never;
/** Each tool's spec: the member of BootstrapSpec whose `tool` includes it. */
type SpecOf = { [T in Tool]: SpecMember<BootstrapSpec, T> };

const SOURCES: { readonly [T in Tool]: BootstrapSource<SpecOf[T]> } = {
  debootstrap: debootstrapSource,
  mmdebstrap: mmdebstrapSource,
  dnf: dnfSource,
  yum: yumSource,
};

/** The source of a spec's tool, typed for that tool's spec. */
export function sourceFor<T extends Tool>(spec: { tool: T }): BootstrapSource<SpecOf[T]> {
  return SOURCES[spec.tool];
}
