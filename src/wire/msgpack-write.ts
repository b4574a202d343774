/**
 * Writing MessagePack by hand, for the hot path's fixed shapes (framing.ts's msg frames,
 * envelope-codec.ts's envelopes): header sizes and writers that produce what
 * @msgpack/msgpack's Encoder writes for the same values.
 */

/** str header size for a string of n UTF-8 bytes. */
export const strHeader = (n: number): number => (n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5)

/** bin header size for n bytes. */
export const binHeader = (n: number): number => (n < 0x100 ? 2 : n < 0x10000 ? 3 : 5)

/** Writes a str (header + the n UTF-8 bytes of s) at `at`; returns the offset after it. */
export function putStr(out: Buffer, at: number, s: string, n: number): number {
  if (n < 32) out[at++] = 0xa0 | n
  else if (n < 0x100) { out[at++] = 0xd9; out[at++] = n }
  else if (n < 0x10000) { out[at++] = 0xda; out.writeUInt16BE(n, at); at += 2 }
  else { out[at++] = 0xdb; out.writeUInt32BE(n, at); at += 4 }
  if (n === 0) return at
  // As many bytes as characters: all ASCII. A short one (ids, names) is copied here, which
  // costs less than Buffer's write (a call into C++); a longer one as latin1, the quicker copy.
  if (n === s.length && n <= SHORT) {
    for (let i = 0; i < n; i++) out[at + i] = s.charCodeAt(i)
    return at + n
  }
  return at + out.write(s, at, n, n === s.length ? 'latin1' : 'utf8')
}

/** Strings up to this many characters are measured and copied in JavaScript (see putStr, asciiLength). */
export const SHORT = 48

/** s.length when s is plain ASCII (as many UTF-8 bytes as characters), else -1; for short strings. */
export function asciiLength(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return -1
  return s.length
}

/** Writes a bin (header + bytes) at `at`; returns the offset after it. */
export function putBin(out: Buffer, at: number, b: Uint8Array): number {
  const n = b.length
  if (n < 0x100) { out[at++] = 0xc4; out[at++] = n }
  else if (n < 0x10000) { out[at++] = 0xc5; out.writeUInt16BE(n, at); at += 2 }
  else { out[at++] = 0xc6; out.writeUInt32BE(n, at); at += 4 }
  out.set(b, at)
  return at + n
}
