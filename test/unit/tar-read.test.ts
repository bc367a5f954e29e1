import { describe, expect, it } from 'vitest';
import { encodeHeader, END_OF_ARCHIVE, padding, type TarEntry } from '../../format/tar/header.ts';
import { readTar, TarFormatError, type TarFormatErrorKind } from '../../format/tar/read.ts';

function archive(entries: Array<{ entry: TarEntry; data?: Buffer }>, end = true): Buffer {
  const parts: Buffer[] = [];
  for (const { entry, data } of entries) {
    parts.push(encodeHeader(entry));
    if (data) parts.push(data, Buffer.alloc(padding(data.length)));
  }
  if (end) parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

const file = (path: string, data: string, extra: Partial<TarEntry> = {}) => ({
  entry: { path, type: 'file' as const, mode: 0o644, uid: 0, gid: 0, size: Buffer.byteLength(data), mtime: 1_700_000_000, ...extra },
  data: Buffer.from(data),
});

/** Feeds the archive in small, odd-sized chunks, as a network stream would. */
async function* chunked(buf: Buffer, size = 77): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function readAll(buf: Buffer) {
  const out: Array<{ entry: TarEntry; data: string }> = [];
  for await (const { entry, body } of readTar(chunked(buf))) {
    const chunks: Buffer[] = [];
    for await (const c of body()) chunks.push(c);
    out.push({ entry, data: Buffer.concat(chunks).toString() });
  }
  return out;
}

describe('readTar', () => {
  it('reads what encodeHeader writes, across chunk boundaries', async () => {
    const longName = `${'deep/'.repeat(30)}file-ü.txt`;
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x80, 0xff, 0x00, 0x00]);
    const buf = archive([
      { entry: { path: 'etc', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 1 } },
      file('etc/hello', 'hello world'),
      file(longName, 'long', { uid: 3_000_000, gid: 3_000_001 }),
      file('usr/bin/ping', 'ELF', { mode: 0o4755, xattrs: new Map([['security.capability', cap]]) }),
      { entry: { path: 'etc/link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 1, linkname: 'hello' } },
      { entry: { path: 'etc/hard', type: 'link', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1, linkname: 'etc/hello' } },
      { entry: { path: 'dev/null', type: 'char', mode: 0o666, uid: 0, gid: 0, size: 0, mtime: 1, devmajor: 1, devminor: 3 } },
    ]);
    const got = await readAll(buf);
    expect(got.map((g) => g.entry.path)).toEqual(['etc', 'etc/hello', longName, 'usr/bin/ping', 'etc/link', 'etc/hard', 'dev/null']);
    expect(got[1]!.data).toBe('hello world');
    expect(got[2]!.entry.uid).toBe(3_000_000);
    expect(got[2]!.entry.gid).toBe(3_000_001);
    expect(got[3]!.entry.mode).toBe(0o4755);
    // Binary xattr values survive byte for byte (0x80 and 0xff are not valid UTF-8).
    expect(got[3]!.entry.xattrs?.get('security.capability')).toEqual(cap);
    expect(got[4]!.entry.linkname).toBe('hello');
    expect(got[5]!.entry).toMatchObject({ type: 'link', linkname: 'etc/hello' });
    expect(got[6]!.entry).toMatchObject({ type: 'char', devmajor: 1, devminor: 3 });
  });

  it('skips bodies the reader does not consume', async () => {
    const buf = archive([file('a', 'x'.repeat(5000)), file('b', 'second')]);
    const names: string[] = [];
    let second = '';
    for await (const { entry, body } of readTar(chunked(buf, 1000))) {
      names.push(entry.path);
      if (entry.path === 'b') for await (const c of body()) second += c.toString();
    }
    expect(names).toEqual(['a', 'b']);
    expect(second).toBe('second');
  });

  it('rejects a corrupted header checksum', async () => {
    const buf = archive([file('a', 'data')]);
    buf[10] = 0x41; // change the name without fixing the checksum
    await expect(readAll(buf)).rejects.toThrow(/bad header checksum at byte 0/);
  });

  it('rejects a truncated archive', async () => {
    const buf = archive([file('a', 'x'.repeat(3000))]);
    await expect(readAll(buf.subarray(0, 1500))).rejects.toBeInstanceOf(TarFormatError);
    await expect(readAll(archive([file('a', 'data')], false))).rejects.toThrow(/end-of-archive/);
  });

  it('rejects unknown entry types and malformed numbers', async () => {
    const weird = archive([file('a', '')]);
    weird[156] = 'Z'.charCodeAt(0);
    // Fix the checksum so only the type is wrong.
    weird.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += weird[i]!;
    weird.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'binary');
    await expect(readAll(weird)).rejects.toThrow(/unsupported tar entry type "Z"/);

    const badSize = archive([file('a', '')]);
    badSize.write('12345678z0\0', 124, 11, 'binary');
    badSize.fill(0x20, 148, 156);
    sum = 0;
    for (let i = 0; i < 512; i++) sum += badSize[i]!;
    badSize.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'binary');
    await expect(readAll(badSize)).rejects.toThrow(/malformed size/);
  });

  it('says what is wrong as data: a kind, and the byte the message names', async () => {
    /** A header for `entry` with `patch` applied and its checksum fixed. */
    const patched = (entry: TarEntry, patch: (block: Buffer) => void) => {
      const block = Buffer.from(encodeHeader(entry));
      patch(block);
      block.fill(0x20, 148, 156);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += block[i]!;
      block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
      return block;
    };
    const plain = file('a', 'data');
    const one = archive([plain]);
    const paxBody = Buffer.from('99 path=a\n');
    const cases: Array<[name: string, buf: Buffer, kind: TarFormatErrorKind, offset: number | undefined]> = [
      ['cut in a file', archive([file('a', 'x'.repeat(3000))]).subarray(0, 1500), 'truncated', 1500],
      ['cut in a header', one.subarray(0, 300), 'truncated', 300],
      ['no end marker', archive([plain], false), 'no-end-marker', undefined],
      ['checksum', Buffer.concat([one.subarray(0, 1024), (() => { const h = Buffer.from(encodeHeader(plain.entry)); h[0] = 0x62; return h; })(), one.subarray(1024)]), 'bad-checksum', 1024],
      ['type', Buffer.concat([one.subarray(0, 1024), patched(plain.entry, (b) => b.write('Z', 156, 'latin1')), one.subarray(1024)]), 'unsupported-entry-type', 1024],
      ['number', Buffer.concat([patched(plain.entry, (b) => b.write('0x777\0\0\0', 100, 'latin1')), one.subarray(512)]), 'bad-number-field', undefined],
      ['pax record', Buffer.concat([patched({ ...plain.entry, size: paxBody.length }, (b) => b.write('x', 156, 'latin1')), paxBody, Buffer.alloc(padding(paxBody.length)), one]), 'bad-pax-record', undefined],
      ['oversized pax', Buffer.concat([one.subarray(0, 1024), patched({ ...plain.entry, size: 2 << 20 }, (b) => b.write('x', 156, 'latin1'))]), 'oversized-meta-header', 1024],
      // encodeHeader puts the name into a pax header (two blocks): the entry's own header is at 1024.
      ['NUL in a name', archive([{ entry: { ...plain.entry, path: 'a\0b' }, data: plain.data }]), 'nul-in-name', 1024],
    ];
    for (const [name, buf, kind, offset] of cases) {
      const err = await readAll(buf).then(() => undefined, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(TarFormatError);
      expect({ name, kind: (err as TarFormatError).kind, offset: (err as TarFormatError).offset }).toEqual({ name, kind, offset });
      // The message names the same byte (the extractor uses the field, people read the message).
      if (offset !== undefined) expect((err as Error).message, name).toMatch(new RegExp(` at byte ${offset}$`));
      else expect((err as Error).message, name).not.toMatch(/at byte/);
    }
  });
});
