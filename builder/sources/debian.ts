// What debootstrap and mmdebstrap share: Debian's architecture names. The archive's metadata
// is apt's (../managers/apt.ts).
import { VztplError } from '../../common/errors.ts';

export function debianArch(arch: string): string {
  const map: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64', i386: 'i386', ppc64le: 'ppc64el', s390x: 's390x' };
  const deb = map[arch];
  if (!deb) throw new VztplError(`no Debian architecture for ${arch}`);
  return deb;
}
