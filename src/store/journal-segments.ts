/**
 * The journal's files: segment names, reading a segment back, and spares, the preallocated
 * files a segment starts from (see journal.ts).
 *
 *   spare:  open journal-spare-<pid>-<rand>.tmp ─▶ zeros in 1 MiB writes ─▶ fsync ─▶ ready
 *   replay: records in order; at a bad one, on from the next good record (the stretch between is
 *           damage); none after it: a torn tail; trailing zeros are room
 */
import fs from 'node:fs'
import path from 'node:path'
import { crc32 } from './crc32'

/** [u32 length][u32 crc32 of payload], big-endian, before each payload. */
export const HEADER = 8
/** A record bigger than this is treated as garbage on replay (no message may be this large). */
const MAX_RECORD = 64 * 1024 * 1024
/** Zeros are written in pieces this big: few, large sequential writes suit SD cards and eMMC. */
const ZERO_CHUNK = 1024 * 1024
/** Spares being prepared or ready to be renamed into place; replay never reads them. */
export const SPARE_RE = /^journal-spare-[\w-]+\.tmp$/

export interface ReplayedSegment {
  segment: number
  records: Uint8Array[]
  /**
   * Stretches that failed their check but are followed by good records: damage (a flipped
   * byte, a bad sector), not a crash. Every good record after one is kept.
   */
  damaged: DamagedStretch[]
  /** What follows the last good record when it is not a record (a torn write, or damage at the end). */
  tail?: DamagedStretch
  /** Bytes after the last good record (the tail's), dropped; the zeros of unused preallocated room do not count. */
  droppedBytes: number
}

/** Bytes of a segment that are not a good record, with good records after them. */
export interface DamagedStretch {
  /** Byte offset in the segment file. */
  offset: number
  bytes: number
  /**
   * What the first record's header framed, when its length was plausible: the payload as it
   * stands (it failed its CRC), for a best-effort reading of which message it was.
   */
  payload?: Uint8Array
  /** Good records before it in this segment. */
  after: number
}

const SEGMENT_RE = /^journal-(\d{12})\.log$/

export function segmentName(n: number): string {
  return `journal-${String(n).padStart(12, '0')}.log`
}

export function listSegments(dir: string): number[] {
  return fs.readdirSync(dir)
    .map((f) => SEGMENT_RE.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b)
}

/**
 * Read every good record of a segment file, in order. At a bad record it looks for the next
 * good one (where the bad record's length says, else byte by byte): found, the stretch
 * between is damage and reading goes on; not found, the rest is a torn tail.
 */
export function readSegment(file: string, segment: number, startsRecord: (firstByte: number) => boolean = () => true, bytes?: Buffer): ReplayedSegment {
  const buf = bytes ?? fs.readFileSync(file)
  const records: Uint8Array[] = []
  const damaged: DamagedStretch[] = []
  let off = 0
  while (off + HEADER <= buf.length) {
    const payload = recordAt(buf, off)
    if (payload !== undefined) {
      records.push(payload)
      off += HEADER + payload.length
      continue
    }
    const next = nextRecord(buf, off, startsRecord)
    if (next === undefined) break
    const len = buf.readUInt32BE(off)
    const framed = len > 0 && off + HEADER + len <= next ? buf.subarray(off + HEADER, off + HEADER + len) : undefined
    damaged.push({ offset: off, bytes: next - off, ...(framed ? { payload: framed } : {}), after: records.length })
    off = next
  }
  const dropped = Math.max(0, dataEnd(buf, off) - off)
  if (dropped === 0) return { segment, records, damaged, droppedBytes: 0 }
  const len = off + HEADER <= buf.length ? buf.readUInt32BE(off) : 0
  const framed = len > 0 && len <= MAX_RECORD && off + HEADER + len <= buf.length ? buf.subarray(off + HEADER, off + HEADER + len) : undefined
  return { segment, records, damaged, tail: { offset: off, bytes: dropped, ...(framed ? { payload: framed } : {}), after: records.length }, droppedBytes: dropped }
}

/** Whether a segment's bytes hold anything but zeros. */
export function hasData(buf: Buffer): boolean {
  return dataEnd(buf, 0) > 0
}

/** The payload of a good record at `off` (length in range, CRC matching), else undefined. */
function recordAt(buf: Buffer, off: number): Buffer | undefined {
  if (off + HEADER > buf.length) return undefined
  const len = buf.readUInt32BE(off)
  // No record is empty: a zero length is the unused room of a preallocated segment, or the
  // zero-filled tail a power loss leaves on some filesystems.
  if (len === 0 || len > MAX_RECORD || off + HEADER + len > buf.length) return undefined
  const payload = buf.subarray(off + HEADER, off + HEADER + len)
  return crc32(payload) === buf.readUInt32BE(off + 4) ? payload : undefined
}

/**
 * Where the next good record after a bad one at `bad` starts: right after the bad one when its
 * length was intact (a flipped byte in the payload), else the first offset that frames a good
 * record. `startsRecord` rules out offsets whose first payload byte no record starts with
 * (the store's records start with an op code), sparing them a CRC. Good records never start in
 * the zeros after the last non-zero byte.
 */
function nextRecord(buf: Buffer, bad: number, startsRecord: (firstByte: number) => boolean): number | undefined {
  const len = buf.readUInt32BE(bad)
  if (len > 0 && len <= MAX_RECORD && recordAt(buf, bad + HEADER + len) !== undefined) return bad + HEADER + len
  const end = dataEnd(buf, bad)
  for (let p = bad + 1; p < end; p++) {
    if (p + HEADER >= buf.length || !startsRecord(buf[p + HEADER]!)) continue
    if (recordAt(buf, p) !== undefined) return p
  }
  return undefined
}

/** The end of the last non-zero byte at or after `from` (`from` when only zeros follow). */
function dataEnd(buf: Buffer, from: number): number {
  const zeros = zeroChunk()
  let end = buf.length
  // Whole chunks compared with memcmp: a mostly empty 4 MiB segment is scanned in well under a millisecond.
  while (end - from >= zeros.length && buf.compare(zeros, 0, zeros.length, end - zeros.length, end) === 0) end -= zeros.length
  while (end > from && buf[end - 1] === 0) end--
  return end
}

let zeros: Buffer | undefined
function zeroChunk(): Buffer {
  return (zeros ??= Buffer.alloc(ZERO_CHUNK))
}

export function openSegment(dir: string, n: number): number {
  const fd = fs.openSync(path.join(dir, segmentName(n)), 'wx')
  fsyncDir(dir)
  return fd
}

/** A new file of `bytes` zeros, fsynced; resolves with its open descriptor. Stops early when `cancelled()`. */
export async function fillWithZeros(file: string, bytes: number, cancelled: () => boolean): Promise<number> {
  const fd = await new Promise<number>((res, rej) => fs.open(file, 'wx', (e, fd) => (e ? rej(e) : res(fd))))
  try {
    for (let at = 0; at < bytes && !cancelled(); at += ZERO_CHUNK) {
      await writeAll(fd, zeroChunk().subarray(0, Math.min(ZERO_CHUNK, bytes - at)), at)
    }
    if (!cancelled()) await new Promise<void>((res, rej) => fs.fsync(fd, (e) => (e ? rej(e) : res())))
    return fd
  } catch (err) {
    discard(fd, undefined)
    throw err
  }
}

/** Close and remove a spare nobody will use; best effort (a leftover is removed at the next start). */
export function discard(fd: number | undefined, file: string | undefined): void {
  try {
    if (fd !== undefined) fs.closeSync(fd)
  } catch { /* already closed */ }
  try {
    if (file !== undefined) fs.rmSync(file, { force: true })
  } catch { /* removed at the next start */ }
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

export function writeAllSync(fd: number, buf: Buffer, position: number): void {
  for (let done = 0; done < buf.length;) done += fs.writeSync(fd, buf, done, buf.length - done, position + done)
}

export function writeAll(fd: number, buf: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      fs.write(fd, buf, done, buf.length - done, position + done, (err, n) => {
        if (err) return reject(err)
        if (done + n < buf.length) return step(done + n)
        resolve()
      })
    }
    step(0)
  })
}

/** Free bytes on the disk holding `dir`. */
export function freeBytes(dir: string): Promise<number> {
  return new Promise((resolve, reject) => fs.statfs(dir, (err, s) => (err ? reject(err) : resolve(s.bavail * s.bsize))))
}

/** Records framed for the journal: [u32 length][u32 crc32][payload] each, in one buffer. */
export function frameBatch(batch: readonly { payload: Uint8Array }[]): Buffer {
  let total = 0
  for (const p of batch) total += HEADER + p.payload.length
  const buf = Buffer.allocUnsafe(total)
  let off = 0
  for (const p of batch) {
    buf.writeUInt32BE(p.payload.length, off)
    buf.writeUInt32BE(crc32(p.payload), off + 4)
    buf.set(p.payload, off + HEADER)
    off += HEADER + p.payload.length
  }
  return buf
}
