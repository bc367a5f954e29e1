// The bootstrap sources by recipe `bootstrap.tool`.
import type { BootstrapSpec } from '../recipe/schema.ts';
import { debootstrapSource } from './debootstrap.ts';
import { dnfSource, yumSource } from './dnf.ts';
import { mmdebstrapSource } from './mmdebstrap.ts';
import type { BootstrapSource } from './source.ts';

const SOURCES: Record<BootstrapSpec['tool'], unknown> = {
  debootstrap: debootstrapSource,
  mmdebstrap: mmdebstrapSource,
  dnf: dnfSource,
  yum: yumSource,
};

export function sourceFor(spec: BootstrapSpec): BootstrapSource {
  return SOURCES[spec.tool] as BootstrapSource;
}
