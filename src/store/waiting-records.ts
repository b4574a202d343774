/**
 * Waiting messages as records in a snapshot's body file (store format 4): the bodies as
 * outbox-bodies.ts writes them (each `[u32 length][u32 crc32][body]`, read back by BodyStore.read
 * exactly as in formats 2 and 3), then one block with the metadata of all of them, whose offset
 * and CRC32 the snapshot's `waiting_files` row holds.
 *
 *   meta of each, in the order written (its ordinal):
 *     [f64 body at][u32 body length][f64 seq][f64 createdAt][f64 expiresAt][f64 ackTimeout|NaN][f64 retries|NaN]
 *     [u8 idLen][id][u8 destLen][dest][u16 methodLen + 1, 0: no route][method]     (big-endian, UTF-8)
 *
 *   snapshot: bodies appended (RecordsWriter.add) ─▶ the meta block after them (finish) ─▶ fsync ─▶ snapshot
 *   open:     the meta block read in one piece, checked against its CRC once, parsed (scanRecords);
 *             the records the snapshot's removed bitmap marks are skipped; bodies are not read
 *
 * One CRC over the block, not one a record: a call costs more than hashing 60 bytes. A body's
 * CRC is checked when it is read (delivery), so one damaged body holds back that message only.
 */
import fs from 'node:fs'
import path from 'node:path'
import { OutpostError } from '../errors'
import { crc32 } from './crc32'
import { bodyFileName, type BodyFileWriter } from './outbox-bodies'
import type { Route } from './outbox-ops'

const FIXED = 12 + 5 * 8
/** The meta block is gathered in pieces of this size (no one big buffer grown by copying). */
const PIECE = 256 * 1024

/** What a record says of its message (the body stays in the file). */
export interface WaitingMeta {
  id: string
  dest: string
  seq: number
  createdAt: number
  expiresAt: number
  route?: Route | undefined
}

/** A body file of records being written: bodies go to the file as they come, their metadata at the end. */
export class RecordsWriter {
  private readonly pieces: Buffer[] = []
  private piece = Buffer.allocUnsafe(PIECE)
  private used = 0
  count = 0

  constructor(readonly w: BodyFileWriter) {}

  /** Append `m` and its body; returns where the body's header is. Its ordinal is `count` before the call. */
  add(m: WaitingMeta, body: Uint8Array): number {
    const at = this.w.add(body)
    const method = m.route?.method
    const most = FIXED + 2 + 2 * 255 + 2 + (method === undefined ? 0 : 3 * method.length)
    if (this.used + most > this.piece.length) {
      this.pieces.push(this.piece.subarray(0, this.used))
      this.piece = Buffer.allocUnsafe(Math.max(PIECE, most))
      this.used = 0
    }
    const b = this.piece
    let p = this.used
    p = b.writeDoubleBE(at, p)
    p = b.writeUInt32BE(body.length, p)
    p = b.writeDoubleBE(m.seq, p)
    p = b.writeDoubleBE(m.createdAt, p)
    p = b.writeDoubleBE(m.expiresAt, p)
    p = b.writeDoubleBE(m.route?.ackTimeout ?? NaN, p)
    p = b.writeDoubleBE(m.route?.retries ?? NaN, p)
    p = short(b, m.id, p, 'id')
    p = short(b, m.dest, p, 'dest')
    if (method === undefined) p = b.writeUInt16BE(0, p)
    else {
      const n = b.write(method, p + 2, 'utf8')
      if (n > 65_534) throw new OutpostError('envelope_invalid', `outbox: method ${JSON.stringify(method.slice(0, 40))} is too long`)
      b.writeUInt16BE(n + 1, p)
      p += 2 + n
    }
    this.used = p
    this.count++
    return at
  }

  /** Write the meta block after the bodies: where it starts, and its CRC32. */
  finish(): { metaAt: number; metaCrc: number } {
    this.pieces.push(this.piece.subarray(0, this.used))
    const block = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces)
    this.pieces.length = 0
    return { metaAt: this.w.addRaw(block), metaCrc: crc32(block) }
  }
}

function short(b: Buffer, s: string, p: number, what: string): number {
  const n = b.write(s, p + 1, 'utf8')
  if (n > 255 || n !== Buffer.byteLength(s)) throw new OutpostError('envelope_invalid', `outbox: ${what} ${JSON.stringify(s.slice(0, 40))} is longer than 255 bytes`)
  b[p] = n
  return p + 1 + n
}

/**
 * A record found by a scan: its id as bytes [idAt, idAt + idLen) of `block` (no string made: the
 * index packs the bytes), its metadata, its ordinal in the file, where its body's header is, the
 * body's length (positional: this runs for every stored message at start).
 */
export type ScannedRecord = (block: Buffer, idAt: number, idLen: number, dest: string, seq: number, createdAt: number, expiresAt: number, route: Route | undefined, ord: number, at: number, len: number) => void

/** Where a file's records are, as its `waiting_files` row says. */
export interface RecordsFileInfo {
  file: number
  records: number
  metaAt: number
  end: number
  metaCrc: number
}

/**
 * Hand each record of a body file not marked in `removed` (a bit per ordinal) to `each`. A file
 * that is missing, shorter than the snapshot says, or whose meta block fails its CRC is
 * outbox_corrupt (which records it holds cannot be told).
 */
export function scanRecords(dir: string, f: RecordsFileInfo, removed: Uint8Array, each: ScannedRecord): void {
  const name = path.join(dir, bodyFileName(f.file))
  const block = Buffer.allocUnsafe(f.end - f.metaAt)
  let got: number
  try {
    const fd = fs.openSync(name, 'r')
    try {
      got = fs.readSync(fd, block, 0, block.length, f.metaAt)
    } finally {
      fs.closeSync(fd)
    }
  } catch (cause) {
    throw new OutpostError('outbox_corrupt', `outbox: ${f.records} stored messages are in ${name}, which cannot be read (${(cause as Error).message}); keep a copy of the directory before repairing it`, { cause })
  }
  if (got < block.length) throw new OutpostError('outbox_corrupt', `outbox: ${name} is shorter than its ${f.records} stored messages need (the file was truncated); keep a copy of the directory before repairing it`)
  if (crc32(block) !== f.metaCrc) throw new OutpostError('outbox_corrupt', `outbox: the list of the ${f.records} stored messages at the end of ${name} is damaged (its CRC does not match); keep a copy of the directory before repairing it`)
  const dests = new Map<string, string>()
  // The first few distinct destinations: where their bytes are in the block, and their string
  // (a backlog for a few nodes in turn is not runs of one, and needs no string a record either).
  const destAts: number[] = []
  const destStrs: string[] = []
  const routes = new Map<string, Route>()
  // DataView's reads are intrinsics; Buffer's readDoubleBE swaps bytes in JavaScript.
  const dv = new DataView(block.buffer, block.byteOffset, block.length)
  // A backlog is mostly runs of one destination and route: the previous record's are reused
  // when the bytes match, without a string made.
  let lastDestAt = -1
  let lastDestLen = -1
  let lastDest = ''
  let lastMethodAt = -1
  let lastMethodLen = -1
  let lastAck = NaN
  let lastRetries = NaN
  let lastRoute: Route | undefined
  let p = 0
  for (let ord = 0; ord < f.records; ord++) {
    const o = p
    const idLen = block[o + FIXED]!
    const destAt = o + FIXED + 1 + idLen
    const destLen = block[destAt]!
    const methodAt = destAt + 1 + destLen
    const methodLen = dv.getUint16(methodAt)
    p = methodAt + 2 + (methodLen > 0 ? methodLen - 1 : 0)
    if ((removed[ord >> 3]! & (1 << (ord & 7))) !== 0) continue
    let dest: string
    if (destLen === lastDestLen && same(block, destAt + 1, lastDestAt + 1, destLen)) dest = lastDest
    else {
      let k = 0
      while (k < destAts.length && !(block[destAts[k]!] === destLen && same(block, destAt + 1, destAts[k]! + 1, destLen))) k++
      if (k < destAts.length) dest = destStrs[k]!
      else {
        const d = block.toString('utf8', destAt + 1, methodAt)
        dest = dests.get(d) ?? d
        dests.set(d, dest)
        if (destAts.length < 16) {
          destAts.push(destAt)
          destStrs.push(dest)
        }
      }
    }
    lastDestAt = destAt
    lastDestLen = destLen
    lastDest = dest
    let route: Route | undefined
    if (methodLen > 0) {
      const ack = dv.getFloat64(o + 36)
      const retries = dv.getFloat64(o + 44)
      if (lastRoute !== undefined && methodLen === lastMethodLen && Object.is(ack, lastAck) && Object.is(retries, lastRetries) && same(block, methodAt + 2, lastMethodAt + 2, methodLen - 1)) route = lastRoute
      else {
        const method = block.toString('utf8', methodAt + 2, p)
        // One object per distinct route: a backlog names few.
        const key = `${ack} ${retries} ${method}`
        route = routes.get(key)
        if (route === undefined) {
          route = {} as Route
          if (!Number.isNaN(ack)) route.ackTimeout = ack
          if (!Number.isNaN(retries)) route.retries = retries
          route.method = method
          routes.set(key, route)
        }
      }
      lastRoute = route
      lastMethodAt = methodAt
      lastMethodLen = methodLen
      lastAck = ack
      lastRetries = retries
    }
    each(block, o + FIXED + 1, idLen, dest, dv.getFloat64(o + 12), dv.getFloat64(o + 20), dv.getFloat64(o + 28), route, ord, dv.getFloat64(o), dv.getUint32(o + 8))
  }
  if (p !== block.length) throw new OutpostError('outbox_corrupt', `outbox: the list of stored messages at the end of ${name} does not hold the ${f.records} the snapshot says; keep a copy of the directory before repairing it`)
}

/** Whether bytes [a, a + n) and [b, b + n) of `block` are the same. */
function same(block: Buffer, a: number, b: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (block[a + i] !== block[b + i]) return false
  return true
}
