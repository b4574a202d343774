/**
 * Waiting messages as records in a snapshot's body file (store format 4): each record is the
 * message's metadata, then its body as outbox-bodies.ts writes one, so a body is read back
 * exactly as in format 2 and 3 (BodyStore.read, at the body's header).
 *
 *   record: [u32 metaLen][u32 crc32 of meta][meta][u32 bodyLen][u32 crc32 of body][body]   (big-endian)
 *   meta:   [f64 seq][f64 createdAt][f64 expiresAt][f64 ackTimeout|NaN][f64 retries|NaN]
 *           [u8 idLen][id][u8 destLen][dest][u16 methodLen + 1, 0: no route][method]      (UTF-8)
 *
 *   snapshot: the messages still waiting ─▶ records appended (writeRecord) ─▶ fsync ─▶ snapshot
 *   open:     each file the snapshot lists ─▶ scanned record by record (scanRecords), the ones its
 *             removed bitmap marks skipped, each meta checked against its CRC ─▶ the index in memory
 *
 * The body's CRC is checked when the body is read (delivery), not at the scan: start-up reads
 * the metadata only (a read of the file in 1 MiB pieces, bodies stepped over).
 */
import fs from 'node:fs'
import path from 'node:path'
import { OutpostError } from '../errors'
import { crc32 } from './crc32'
import { bodyFileName, type BodyFileWriter } from './outbox-bodies'
import type { Route } from './outbox-ops'

const META_HEADER = 8
const BODY_HEADER = 8
const FIXED = 5 * 8
/** Scratch for one record's meta: its largest is FIXED + 2 x 256 + 2 + 65535. */
const scratch = Buffer.allocUnsafe(META_HEADER + FIXED + 2 * 256 + 2 + 65_536)

/** What a record says of its message (the body stays in the file). */
export interface WaitingMeta {
  id: string
  dest: string
  seq: number
  createdAt: number
  expiresAt: number
  route?: Route | undefined
}

/** Append `m` and its body to `w`; returns where the record starts and where its body's header is. */
export function writeRecord(w: BodyFileWriter, m: WaitingMeta, body: Uint8Array): { rec: number; at: number } {
  let p = META_HEADER
  p = scratch.writeDoubleBE(m.seq, p)
  p = scratch.writeDoubleBE(m.createdAt, p)
  p = scratch.writeDoubleBE(m.expiresAt, p)
  p = scratch.writeDoubleBE(m.route?.ackTimeout ?? NaN, p)
  p = scratch.writeDoubleBE(m.route?.retries ?? NaN, p)
  p = putShort(m.id, p, 'id')
  p = putShort(m.dest, p, 'dest')
  if (m.route === undefined) p = scratch.writeUInt16BE(0, p)
  else {
    const n = scratch.write(m.route.method, p + 2, 65_534, 'utf8')
    scratch.writeUInt16BE(n + 1, p)
    p += 2 + n
  }
  scratch.writeUInt32BE(p - META_HEADER, 0)
  scratch.writeUInt32BE(crc32(scratch.subarray(META_HEADER, p)), 4)
  const rec = w.addRaw(scratch.subarray(0, p))
  return { rec, at: w.add(body) }
}

function putShort(s: string, p: number, what: string): number {
  const n = scratch.write(s, p + 1, 255, 'utf8')
  if (Buffer.byteLength(s) > 255) throw new OutpostError('envelope_invalid', `outbox: ${what} ${JSON.stringify(s.slice(0, 40))} is longer than 255 bytes`)
  scratch.writeUInt8(n, p)
  return p + 1 + n
}

/** One record found by a scan: its ordinal in the file, where it starts, where its body's header is, its body's length. */
export interface ScannedRecord extends WaitingMeta {
  ord: number
  rec: number
  at: number
  len: number
}

const CHUNK = 1024 * 1024

/**
 * Read the `count` records of body file `file` in order, handing each not marked in `removed`
 * (a bit per ordinal) to `each`. A file that is missing, shorter than its records or whose
 * metadata fails its CRC is outbox_corrupt (the records after a damaged one cannot be found).
 * Returns the byte after the last record.
 */
export function scanRecords(dir: string, file: number, count: number, removed: Uint8Array, each: (r: ScannedRecord) => void): number {
  const name = path.join(dir, bodyFileName(file))
  let fd: number
  try {
    fd = fs.openSync(name, 'r')
  } catch (cause) {
    throw new OutpostError('outbox_corrupt', `outbox: ${count} stored messages are in ${name}, which cannot be read (${(cause as Error).message}); keep a copy of the directory before repairing it`, { cause })
  }
  const buf = Buffer.allocUnsafe(CHUNK)
  let base = 0
  let have = 0
  const dests = new Map<string, string>()
  const routes = new Map<string, Route>()
  // Makes bytes [pos, pos + n) of the file available in buf; false at the end of the file.
  const need = (pos: number, n: number): Buffer | undefined => {
    if (pos >= base && pos + n <= base + have) return buf
    if (n > CHUNK) {
      const big = Buffer.allocUnsafe(n)
      return fs.readSync(fd, big, 0, n, pos) === n ? (base = pos, have = 0, big) : undefined
    }
    base = pos
    have = fs.readSync(fd, buf, 0, CHUNK, pos)
    return have >= n ? buf : undefined
  }
  const short = (ord: number): OutpostError => new OutpostError('outbox_corrupt', `outbox: ${name} ends before record ${ord} of its ${count} (the file was truncated); keep a copy of the directory before repairing it`)
  let pos = 0
  try {
    for (let ord = 0; ord < count; ord++) {
      let b = need(pos, META_HEADER)
      if (b === undefined) throw short(ord)
      const metaLen = b.readUInt32BE(pos - base)
      const metaCrc = b.readUInt32BE(pos - base + 4)
      const at = pos + META_HEADER + metaLen
      b = need(pos, META_HEADER + metaLen + BODY_HEADER)
      if (b === undefined) throw short(ord)
      const o = pos - base + META_HEADER
      const len = b.readUInt32BE(o + metaLen)
      const next = at + BODY_HEADER + len
      if ((removed[ord >> 3]! & (1 << (ord & 7))) === 0) {
        if (metaLen < FIXED + 3 || crc32(b.subarray(o, o + metaLen)) !== metaCrc) {
          throw new OutpostError('outbox_corrupt', `outbox: record ${ord} of ${name} (byte ${pos}) is damaged (its metadata fails its CRC); keep a copy of the directory before repairing it`)
        }
        let q = o + FIXED
        const idLen = b[q]!
        const id = b.toString('utf8', q + 1, q + 1 + idLen)
        q += 1 + idLen
        const destLen = b[q]!
        const d = b.toString('utf8', q + 1, q + 1 + destLen)
        q += 1 + destLen
        let dest = dests.get(d)
        if (dest === undefined) dests.set(d, (dest = d))
        const methodLen = b.readUInt16BE(q)
        let route: Route | undefined
        if (methodLen > 0) {
          const ack = b.readDoubleBE(o + 24)
          const retries = b.readDoubleBE(o + 32)
          const method = b.toString('utf8', q + 2, q + 1 + methodLen)
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
        each({ id, dest, seq: b.readDoubleBE(o), createdAt: b.readDoubleBE(o + 8), expiresAt: b.readDoubleBE(o + 16), route, ord, rec: pos, at, len })
      }
      pos = next
    }
    // The last record's body must be there too.
    if (count > 0 && fs.fstatSync(fd).size < pos) throw short(count - 1)
  } finally {
    fs.closeSync(fd)
  }
  return pos
}
