/**
 * Bytes the program carries but rarely uses, kept out of its JavaScript source: the lazily
 * loaded dependencies (mqtt, nats, prom-client, cron-parser), the console's files and, in a
 * single binary, sql.js's wasm and the pty addon. V8 keeps a script's whole source in memory
 * for the life of the process, so every byte carried inside the bundle as a string costs its
 * RSS even if never used (~2 MB from a checkout, ~5 MB in a single binary, where the source also
 * stays mapped from the executable).
 *
 * packaging/bundle.mjs writes them as a pack: the payloads one after another, then a JSON index
 * `{ name: [offset, length] }`, then a 16-byte trailer (index length, pack length, u32 LE each;
 * MAGIC). From a checkout the pack is `dist/outpost.pack` beside the bundle; a single binary
 * carries it at the end of its own executable (packaging/package.mjs appends it), read through
 * /proc/self/exe, which names the running file even after an upgrade has replaced it.
 *
 *   [payload][payload]…[index JSON][u32 index length][u32 pack length]["OUTPACK1"]
 */
import fs from 'node:fs'
import path from 'node:path'
import { brotliDecompressSync } from 'node:zlib'

/** Where this build's pack is: a file name beside the bundle, or `@self` (the executable). Set by packaging/bundle.mjs. */
declare const __OUTPOST_PACK__: string | undefined

export const MAGIC = 'OUTPACK1'
export const TRAILER = 16

interface Pack {
  fd: number
  start: number
  index: Record<string, [number, number] | undefined>
}

/**
 * Opened when the bundle starts, not on first use: the file a running process reads payloads
 * from stays the one it started with even if a rebuild or an upgrade replaces it meanwhile.
 */
const opened: Pack | Error | undefined = typeof __OUTPOST_PACK__ === 'string' ? openPack(__OUTPOST_PACK__) : undefined

function openPack(where: string): Pack | Error {
  const files = where === '@self' ? ['/proc/self/exe', process.execPath] : [path.join(__dirname, where)]
  let last: unknown
  for (const file of files) {
    try {
      return readIndex(fs.openSync(file, 'r'), file)
    } catch (err) {
      last = err
    }
  }
  return new Error(`outpost: cannot read the payloads this build carries (${files.join(', ')}): ${(last as Error).message}`)
}

/** The index of the pack at the end of the file open as `fd`. */
export function readIndex(fd: number, file: string): Pack {
  const size = fs.fstatSync(fd).size
  const trailer = Buffer.alloc(TRAILER)
  if (size < TRAILER || fs.readSync(fd, trailer, 0, TRAILER, size - TRAILER) !== TRAILER || trailer.toString('latin1', 8) !== MAGIC) {
    fs.closeSync(fd)
    throw new Error(`${file} ends with no outpost pack`)
  }
  const indexLength = trailer.readUInt32LE(0)
  const start = size - trailer.readUInt32LE(4)
  const json = Buffer.alloc(indexLength)
  fs.readSync(fd, json, 0, indexLength, size - TRAILER - indexLength)
  return { fd, start, index: JSON.parse(json.toString('utf8')) as Pack['index'] }
}

/** The payload `name` as this build packed it, or undefined when the build has no such payload (or no pack: run from the sources). */
export function packed(name: string): Buffer | undefined {
  if (opened === undefined) return undefined
  if (opened instanceof Error) throw opened
  const at = opened.index[name]
  if (at === undefined) return undefined
  const bytes = Buffer.allocUnsafe(at[1])
  let done = 0
  while (done < bytes.length) {
    const n = fs.readSync(opened.fd, bytes, done, bytes.length - done, opened.start + at[0] + done)
    if (n === 0) throw new Error(`outpost: the pack ends inside ${name}`)
    done += n
  }
  return bytes
}

/** A brotli-compressed payload, decompressed; an error when this build lacks it. */
export function unpacked(name: string): Buffer {
  const bytes = packed(name)
  if (bytes === undefined) throw new Error(`outpost: this build carries no ${name}`)
  return brotliDecompressSync(bytes)
}
