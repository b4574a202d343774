import zlib from 'node:zlib'

// zlib.crc32 is native from Node 20.15; the ppc64le binary runs Node 20.11, so keep a table fallback.
const TABLE = new Int32Array(256)
for (let n = 0; n < 256; n++) {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  TABLE[n] = c
}

export function crc32Js(data: Uint8Array): number {
  let crc = -1
  for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ -1) >>> 0
}

const native = (zlib as { crc32?: (data: Uint8Array) => number }).crc32

/** Below this many bytes the table loop is quicker than the call into zlib (a removal's record is ~28 bytes). */
const SMALL = 64

export const crc32: (data: Uint8Array) => number = native ? (d) => (d.length < SMALL ? crc32Js(d) : native(d)) : crc32Js
