// PEM as Go's encoding/pem reads and writes it (what cosign and containers/image use): the first
// "-----BEGIN TYPE-----" block in the text, optional "Key: value" headers, a base64 body, and the
// matching END line. encodePem writes 64-character lines, as pem.EncodeToMemory does.

export interface PemBlock {
  type: string;
  headers: Record<string, string>;
  bytes: Buffer;
}

const BEGIN = /(?:^|\n)-----BEGIN ([^\n-]*)-----[ \t]*\r?\n/;

/** The first PEM block of `text`, or undefined when there is none that parses. */
export function decodePem(text: string): PemBlock | undefined {
  let rest = text;
  for (;;) {
    const m = BEGIN.exec(rest);
    if (!m) return undefined;
    const type = m[1]!;
    const after = rest.slice(m.index + m[0].length);
    const endLine = `-----END ${type}-----`;
    const end = after.indexOf(endLine);
    if (end === -1) {
      rest = after;
      continue;
    }
    const lines = after.slice(0, end).split(/\r?\n/);
    const headers: Record<string, string> = {};
    let i = 0;
    for (; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon === -1) break;
      headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
    }
    if (i > 0 && lines[i]?.trim() === '') i++;
    const body = lines.slice(i).join('').replace(/[ \t\r]/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
      rest = after;
      continue;
    }
    return { type, headers, bytes: Buffer.from(body, 'base64') };
  }
}

export function encodePem(type: string, bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}${lines.length ? '\n' : ''}-----END ${type}-----\n`;
}
