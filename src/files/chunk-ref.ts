/**
 * File chunks stored as references: when the node does not sign what it sends, a file.chunk is
 * queued in the outbox without its data, as [id, index, sha256, CHUNK_REF]. The source file is
 * what keeps the bytes; the outbox keeps where they are and their sha256, so the chunk is as
 * durable as before (it survives a restart of the node), without writing and syncing every
 * byte of the file into the journal.
 *
 *   queued:  read chunk i ─ sha256 ─▶ outbox [id, i, sha256, ref] (no data); the bytes kept in
 *            `fresh` until its first send
 *   sent:    delivery ─▶ expandChunk ─ fresh? ─ no ─▶ read i again, sha256 compared ─▶ the
 *            envelope with the ref dropped and the data in: what a receiver has always got
 *   changed: a source that no longer matches fails the transfer (file_source_changed; the
 *            receiver is told to delete its partial file) and the chunk is withdrawn (null)
 *
 * A signed message keeps its data in the outbox: its signature covers the data's sha256.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { decode, encode } from '../wire/envelope'
import { ended, type OutRecord } from './sender'

/** The fourth argument of a chunk stored as a reference; never seen by a receiver. */
export const CHUNK_REF = 'outpost:ref'

/**
 * The bytes that go out for a stored file.chunk: `body` itself unless it is a reference; the
 * reference with its data (from `fresh`, else read again and checked); null when it must not go
 * (its transfer has ended, or its source changed: `fail` is told).
 */
export function expandChunk(body: Uint8Array, fresh: Map<string, Buffer>, recOf: (id: string) => OutRecord | undefined, fail: (rec: OutRecord, error: { code: string; message: string }) => void): Uint8Array | null {
  let env
  try { env = decode(body) } catch { return body }
  const args = env.methodArgs ?? []
  if (args.length !== 4 || args[3] !== CHUNK_REF) return body
  const [id = '', index = '', hash = ''] = args
  const rec = recOf(id)
  let data = fresh.get(env.id)
  fresh.delete(env.id)
  if (rec === undefined || ended(rec.state)) return null
  if (data === undefined) {
    const i = Number(index)
    const len = i === rec.chunks - 1 ? rec.size - i * rec.chunkBytes : rec.chunkBytes
    data = Buffer.alloc(Math.max(0, len))
    let n = -1
    try {
      const fd = fs.openSync(rec.src, 'r')
      try { n = fs.readSync(fd, data, 0, data.length, i * rec.chunkBytes) } finally { fs.closeSync(fd) }
    } catch { /* gone or unreadable: it changed */ }
    if (n !== len || createHash('sha256').update(data).digest('hex') !== hash) {
      fail(rec, { code: 'file_source_changed', message: `file transfer ${rec.id}: ${rec.src} changed while it was being sent (chunk ${i} no longer matches the sha256 it had when it was queued); the receiver deletes its partial file; send the file again` })
      return null
    }
  }
  return encode({ ...env, methodArgs: [id, index, hash], data })
}
