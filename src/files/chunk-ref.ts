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
 *
 * A chunk is read into a buffer with HEAD_ROOM bytes free before its data; the envelope's head
 * is written there as it is sent, so what goes out is that buffer, the data not copied again.
 * A chunk read in order carries a fifth argument, `upTo`: the sha256 of the file from its
 * start to the end of the chunk (whole-hash.ts), sent as the fourth (in-order.ts checks it;
 * a receiver before 2026-12-06 ignores it). To a receiver that checks by upTo alone (its
 * file.put answer says `upTo: true`) such a chunk goes with '' for its own sha256: each byte
 * is hashed once at the sender too. Its bytes are then kept until its ACK, for a resend; after
 * a restart they are read again and sent with the sha256 they have then (a source changed
 * meanwhile fails the receiver's upTo check, or the whole file's at the commit, and the
 * sender's own check of its size and time).
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { decode, encode, type Envelope } from '../wire/envelope'
import { ended, type OutRecord } from './sender'

/** The fourth argument of a chunk stored as a reference; never seen by a receiver. */
export const CHUNK_REF = 'outpost:ref'

/** Bytes kept free before a chunk's data for its envelope's head (ids, arguments, sha256s: ~300). */
export const HEAD_ROOM = 1024

/** A buffer to read a chunk of `len` bytes into, at HEAD_ROOM (its own memory: the room is ours to write). */
export const chunkBuffer = (len: number): Buffer => Buffer.allocUnsafeSlow(HEAD_ROOM + len)

const EMPTY = new Uint8Array(0)

/** A chunk read (sender.ts): its bytes at HEAD_ROOM in `room`, its sha256, and the file's up to its end (when read in order). */
export interface Chunk { room: Buffer; hash: string; upTo: string | undefined }

/**
 * The bytes that go out for a stored file.chunk: `body` itself unless it is a reference; the
 * reference with its data (from `fresh`, else read again and checked); null when it must not go
 * (its transfer has ended, or its source changed: `fail` is told). `handed` hears of each
 * buffer that goes out, for which message, and whether the chunk was read in this run
 * (chunk-pool.ts).
 */
export function expandChunk(body: Uint8Array, fresh: Map<string, Buffer>, recOf: (id: string) => OutRecord | undefined, fail: (rec: OutRecord, error: { code: string; message: string }) => void, handed?: (id: string, room: Buffer, rec: OutRecord, ours: boolean) => void): Uint8Array | null {
  let env
  try { env = decode(body) } catch { return body }
  const args = env.methodArgs ?? []
  if (args.length < 4 || args.length > 5 || args[3] !== CHUNK_REF) return body
  let [id = '', index = '', hash = ''] = args
  const rec = recOf(id)
  let room = fresh.get(env.id)
  // Read in this run: every send of its message is one of this process's (not so after a restart).
  const ours = room !== undefined
  // A chunk with no sha256 of its own (upTo alone) keeps its bytes until its ACK (Sender.onEvent).
  if (hash !== '') fresh.delete(env.id)
  if (rec === undefined || ended(rec.state)) return null
  if (room === undefined) {
    const i = Number(index)
    const len = i === rec.chunks - 1 ? rec.size - i * rec.chunkBytes : rec.chunkBytes
    room = chunkBuffer(Math.max(0, len))
    let n = -1
    try {
      const fd = fs.openSync(rec.src, 'r')
      try { n = fs.readSync(fd, room, HEAD_ROOM, len, i * rec.chunkBytes) } finally { fs.closeSync(fd) }
    } catch { /* gone or unreadable: it changed */ }
    const sum = n === len ? createHash('sha256').update(room.subarray(HEAD_ROOM)).digest('hex') : ''
    // Upto alone (the bytes read then are gone: a restart): the chunk goes with the sha256 it has
    // now; one that changed fails the receiver's check by upTo, or the whole file's at the commit.
    if (hash === '' && sum !== '') hash = sum
    if (sum === '' || sum !== hash) {
      fail(rec, { code: 'file_source_changed', message: `file transfer ${rec.id}: ${rec.src} changed while it was being sent (chunk ${i} no longer matches the sha256 it had when it was queued); the receiver deletes its partial file; send the file again` })
      return null
    }
  }
  const { data: _none, ...rest } = env
  handed?.(env.id, room, rec, ours)
  return withData({ ...rest, methodArgs: args.length === 5 ? [id, index, hash, args[4]!] : [id, index, hash] }, room)
}

/**
 * encode({ ...env, data }) for the data at HEAD_ROOM in `room`: the head (everything before the
 * data: `data` is the last field) written into the room in front of it, and that returned.
 */
function withData(env: Envelope, room: Buffer): Uint8Array {
  const data = room.subarray(HEAD_ROOM)
  const head = encode({ ...env, data: EMPTY })
  // The head ends with the empty data's bin header (c4 00), replaced by the real one.
  const n = head.length - 2
  const len = data.length
  const bin = len < 0x100 ? 2 : len < 0x10000 ? 3 : 5
  if (head[n] !== 0xc4 || head[n + 1] !== 0 || n + bin > HEAD_ROOM) return encode({ ...env, data })
  const start = HEAD_ROOM - bin - n
  room.set(head.subarray(0, n), start)
  if (bin === 2) { room[HEAD_ROOM - 2] = 0xc4; room[HEAD_ROOM - 1] = len }
  else if (bin === 3) { room[HEAD_ROOM - 3] = 0xc5; room.writeUInt16BE(len, HEAD_ROOM - 2) }
  else { room[HEAD_ROOM - 5] = 0xc6; room.writeUInt32BE(len, HEAD_ROOM - 4) }
  return room.subarray(start)
}
