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
  // As many bytes as characters: all ASCII, and latin1 is the quicker copy.
  return at + out.write(s, at, n, n === s.length ? 'latin1' : 'utf8')
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
