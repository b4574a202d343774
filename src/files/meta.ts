/** What a file.put names, checked (parseMeta), where it lands (targetPath), and the sha256 of a file put together. */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { OutpostError } from '../errors'
import type { MethodResult } from '../method'
import type { PutMeta } from './types'

/** The meta of a file.put, checked. */
export function parseMeta(arg: string | undefined): PutMeta {
  let m: PutMeta
  try {
    m = JSON.parse(arg ?? '') as PutMeta
  } catch {
    throw new OutpostError('method_args', 'file.put: takes one argument, the transfer as JSON ({id, path, name, size, sha256, chunkBytes, mode?, owner?, mkdir?}); outpost cp builds it')
  }
  const bad = (what: string): never => { throw new OutpostError('method_args', `file.put: ${what}`) }
  if (typeof m !== 'object' || m === null) bad('the transfer must be a JSON object')
  if (typeof m.id !== 'string' || !/^[0-9A-Za-z_-]{1,64}$/.test(m.id)) bad('id must be a transfer id (letters, digits, _ and -)')
  if (typeof m.path !== 'string') bad('path must be a string')
  if (typeof m.name !== 'string' || m.name === '' || m.name.includes('/') || m.name === '..' || m.name === '.') bad('name must be a file name')
  if (!Number.isSafeInteger(m.size) || m.size < 0) bad('size must be a byte count')
  // '' (or absent): the sender hashes the file as it reads it and gives the sha256 with file.commit.
  m.sha256 ??= ''
  if (typeof m.sha256 !== 'string' || !/^([0-9a-f]{64})?$/.test(m.sha256)) bad('sha256 must be 64 hex digits, or empty when file.commit gives it')
  if (!Number.isSafeInteger(m.chunkBytes) || m.chunkBytes < 1 || m.chunkBytes > 16 * 1024 * 1024) bad('chunkBytes must be between 1 and 16 MiB')
  if (m.mode !== undefined && (!Number.isInteger(m.mode) || m.mode < 0 || m.mode > 0o7777)) bad('mode must be a file mode such as 420 (0644)')
  if (m.owner !== undefined && typeof m.owner !== 'string') bad('owner must be user[:group]')
  return m
}

/** The target a put names: a directory (existing, or ending in /) takes the file's own name. */
export async function targetPath(meta: PutMeta): Promise<string> {
  if (meta.path.endsWith('/')) return path.join(meta.path, meta.name)
  const st = await fs.promises.stat(meta.path).catch(() => undefined)
  return st?.isDirectory() === true ? path.join(meta.path, meta.name) : meta.path
}

/** The sha256 of the file's `size` bytes: `h` (fed with the first `from` bytes already, default none) fed with the rest read back. */
export async function sha256File(handle: fs.promises.FileHandle, size: number, h = createHash('sha256'), from = 0): Promise<string> {
  const buf = Buffer.alloc(Math.min(1024 * 1024, Math.max(0, size - from)))
  for (let pos = from; pos < size;) {
    const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, size - pos), pos)
    if (bytesRead === 0) break
    h.update(buf.subarray(0, bytesRead))
    pos += bytesRead
  }
  return h.digest('hex')
}

/** Bytes of a message's data. */
export function sizeOf(v: Uint8Array | string | undefined): number {
  return v === undefined ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length
}

/** A message's data as a Buffer (a view, not a copy). */
export function bytesOf(v: Uint8Array | string | undefined): Buffer {
  if (v === undefined) return Buffer.alloc(0)
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
}

/** A file.* method's answer: its JSON as the reply's data. */
export function answer(obj: Record<string, unknown>): MethodResult {
  return { data: JSON.stringify(obj) }
}
