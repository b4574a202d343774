/**
 * The bodies of stored outbox messages, kept on disk beside the snapshots rather than in sql.js
 * (which holds its whole database in memory): a stored row names (file, offset, length) and the
 * body is read back when the delivery loop asks for it.
 *
 *   snapshot: hot survivors (+ live bodies moved out of sparse files) ─▶ bodies-<n>.dat, written
 *             through a small buffer while the rows are made (readable at once) ─▶ fsync ─▶ fsync
 *             dir ─▶ snapshot renamed into place ─▶ files the durable snapshot no longer names are deleted
 *   read:     pread (neighbours in one read) ─▶ length and CRC checked ─▶ body, or outbox_corrupt
 *   open:     per file: rows, live bytes, furthest end (one GROUP BY) ─▶ a missing or short file is
 *             outbox_corrupt; files no row names (a crash mid-snapshot) are deleted
 *
 * Each body in a file is [u32 length][u32 crc32 of the body][body], big-endian, like a journal
 * record. A file is written once and never changed; it goes when no durable snapshot names it.
 */
import fs from 'node:fs'
import path from 'node:path'
import { crc32 } from './crc32'
import { OutpostError } from '../errors'
import { fsyncDir } from './journal'

const HEADER = 8
const FILE_RE = /^bodies-(\d{12})\.dat$/
/** Neighbouring bodies are read with one pread up to this many bytes. */
const READ_SPAN = 256 * 1024
/** A file is compacted when less than this share of it is still live... */
const SPARSE = 0.5
/** ...or when it is this small (so a trickle of survivors does not leave a file per snapshot). */
const SMALL = 1024 * 1024
/** The most live bytes moved out of older files in one snapshot. */
const MOVE_PER_SNAPSHOT = 16 * 1024 * 1024
/** Bytes gathered before each write of a new file (no big buffer: its RSS would stay after it is freed). */
const WRITE_CHUNK = 256 * 1024

export const bodyFileName = (n: number): string => `bodies-${String(n).padStart(12, '0')}.dat`

/** Where a stored body is. */
export interface BodyRef {
  id: string
  file: number
  at: number
  len: number
}

/** What the rows say about one file (from the GROUP BY at open). */
export interface BodyFileUse {
  file: number
  rows: number
  /** Bytes of bodies, without headers. */
  bytes: number
  /** The furthest byte a row reaches. */
  end: number
}

interface BodyFile {
  /** Bytes in the file (headers included). */
  size: number
  /** Bytes still named by a row (headers included) and the number of those rows. */
  live: number
  rows: number
  /** Written but not yet fsynced (a snapshot must not name it before flush()). */
  unsynced: boolean
  fd: number | undefined
}

/**
 * A body file being written during a snapshot: add() returns each body's offset; the bytes go to
 * the file in WRITE_CHUNK pieces. Nothing names the file until the rows are committed, and no
 * durable snapshot does before BodyStore.flush().
 */
export class BodyFileWriter {
  readonly file: number
  private readonly path: string
  private fd: number | undefined
  private readonly chunk = Buffer.allocUnsafe(WRITE_CHUNK)
  private used = 0
  private size = 0
  private added = 0

  constructor(dir: string, file: number) {
    this.file = file
    this.path = path.join(dir, bodyFileName(file))
  }

  get empty(): boolean {
    return this.added === 0
  }

  /** Append a body; returns its offset in the file. */
  add(body: Uint8Array): number {
    const at = this.size
    const len = HEADER + body.length
    if (this.used + len > WRITE_CHUNK) this.write()
    if (len > WRITE_CHUNK) {
      const rec = Buffer.allocUnsafe(len)
      rec.writeUInt32BE(body.length, 0)
      rec.writeUInt32BE(crc32(body), 4)
      rec.set(body, HEADER)
      this.writeOut(rec)
    } else {
      this.chunk.writeUInt32BE(body.length, this.used)
      this.chunk.writeUInt32BE(crc32(body), this.used + 4)
      this.chunk.set(body, this.used + HEADER)
      this.used += len
    }
    this.size += len
    this.added++
    return at
  }

  /** Append bytes as they are (a record's metadata, waiting-records.ts); returns their offset. Not counted as a body. */
  addRaw(bytes: Uint8Array): number {
    const at = this.size
    if (this.used + bytes.length > WRITE_CHUNK) this.write()
    if (bytes.length > WRITE_CHUNK) this.writeOut(bytes)
    else {
      this.chunk.set(bytes, this.used)
      this.used += bytes.length
    }
    this.size += bytes.length
    return at
  }

  /** Bytes of the file so far. */
  get bytes(): number {
    return this.size
  }

  /** Bodies added so far. */
  get count(): number {
    return this.added
  }

  /** Write what is buffered; returns the open file (still to be fsynced) and its size. */
  finish(): { fd: number; size: number } {
    this.write()
    const fd = this.fd ?? this.open()
    this.fd = undefined
    return { fd, size: this.size }
  }

  /** Give up the file (the rows naming it were not committed). */
  abort(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd)
    this.fd = undefined
    fs.rmSync(this.path, { force: true })
  }

  private open(): number {
    this.fd = fs.openSync(this.path, 'w+', 0o600)
    return this.fd
  }

  private write(): void {
    if (this.used === 0) return
    this.writeOut(this.chunk.subarray(0, this.used))
    this.used = 0
  }

  private writeOut(buf: Uint8Array): void {
    const fd = this.fd ?? this.open()
    for (let done = 0; done < buf.length;) done += fs.writeSync(fd, buf, done, buf.length - done)
  }
}

export class BodyStore {
  readonly dir: string
  private readonly files = new Map<number, BodyFile>()

  /** The loaded snapshot's number: older files it does not name may be the previous snapshot's. */
  private readonly snapshot: number

  constructor(dir: string, snapshot = Number.MAX_SAFE_INTEGER) {
    this.dir = dir
    this.snapshot = snapshot
  }

  /**
   * Take over the files the loaded snapshot names (checking each is there and long enough) and
   * delete the newer ones it does not name: left by a snapshot that never became durable. Older
   * ones may belong to the snapshot kept before it; the next snapshot removes them.
   */
  load(uses: BodyFileUse[]): void {
    for (const u of uses) {
      const name = bodyFileName(u.file)
      let size: number
      try {
        size = fs.statSync(path.join(this.dir, name)).size
      } catch (cause) {
        throw new OutpostError('outbox_corrupt', `outbox: ${u.rows} stored messages have their bodies in ${path.join(this.dir, name)}, which cannot be read (${(cause as Error).message}); keep a copy of the directory before repairing it`, { cause })
      }
      if (size < u.end) {
        throw new OutpostError('outbox_corrupt', `outbox: ${path.join(this.dir, name)} is ${size} bytes but its messages reach byte ${u.end} (the file was truncated); keep a copy of the directory before repairing it`)
      }
      this.files.set(u.file, { size, live: u.bytes + HEADER * u.rows, rows: u.rows, unsynced: false, fd: undefined })
    }
    for (const f of fs.readdirSync(this.dir)) {
      const n = FILE_RE.exec(f)?.[1]
      if (n !== undefined && !this.files.has(Number(n)) && Number(n) > this.snapshot) fs.rmSync(path.join(this.dir, f), { force: true })
    }
  }

  /** A new file for snapshot `file`. */
  writer(file: number): BodyFileWriter {
    return new BodyFileWriter(this.dir, file)
  }

  /**
   * Take over a file whose `rows` rows (`bytes` of bodies) have just been committed: readable at
   * once, durable after flush().
   */
  add(w: BodyFileWriter, rows: number, bytes: number): void {
    const { fd, size } = w.finish()
    this.files.set(w.file, { size, live: bytes + HEADER * rows, rows, unsynced: true, fd })
  }

  /** A row no longer names this body (removed, or moved to another file). */
  release(file: number, len: number): void {
    const f = this.files.get(file)
    if (f === undefined) return
    f.live -= HEADER + len
    f.rows--
  }

  /** Files some row names now: what a snapshot exported at this moment depends on. */
  inUse(): Set<number> {
    const out = new Set<number>()
    for (const [n, f] of this.files) if (f.rows > 0) out.add(n)
    return out
  }

  /** Files worth moving the live bodies out of at this snapshot, oldest first, within the per-snapshot budget. */
  sparse(): number[] {
    const out: number[] = []
    let budget = MOVE_PER_SNAPSHOT
    for (const [n, f] of [...this.files].sort((a, b) => a[0] - b[0])) {
      if (f.unsynced || f.rows === 0) continue
      if (f.live >= f.size * SPARSE && f.size >= SMALL) continue
      if (f.live > budget && out.length > 0) break
      out.push(n)
      budget -= f.live
    }
    return out
  }

  /** Make every new file durable: fsync, then the directory (before a snapshot names them). */
  async flush(): Promise<void> {
    let synced = false
    for (const f of this.files.values()) {
      if (!f.unsynced || f.fd === undefined) continue
      const fd = f.fd
      await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())))
      f.unsynced = false
      synced = true
    }
    if (synced) fsyncDir(this.dir)
  }

  /**
   * After a snapshot that names only `kept` is durable: delete every other body file (none of
   * the remaining snapshots or journal segments can need it).
   */
  async removeExcept(kept: Set<number>): Promise<void> {
    for (const f of await fs.promises.readdir(this.dir)) {
      const n = Number(FILE_RE.exec(f)?.[1] ?? NaN)
      if (Number.isNaN(n) || kept.has(n)) continue
      const entry = this.files.get(n)
      if (entry !== undefined) {
        if (entry.rows > 0 || entry.unsynced) continue
        if (entry.fd !== undefined) fs.closeSync(entry.fd)
        this.files.delete(n)
      }
      await fs.promises.rm(path.join(this.dir, f), { force: true })
    }
  }

  /**
   * Read bodies (neighbours in one pread), each checked against its length and CRC: a body that
   * cannot be read or fails the check comes back as an outbox_corrupt error in its place.
   */
  read(refs: BodyRef[]): (Uint8Array | OutpostError)[] {
    const out: (Uint8Array | OutpostError)[] = []
    for (let i = 0; i < refs.length;) {
      const first = refs[i]!
      let j = i + 1
      let end = first.at + HEADER + first.len
      while (j < refs.length) {
        const r = refs[j]!
        if (r.file !== first.file || r.at !== end || r.at + HEADER + r.len - first.at > READ_SPAN) break
        end = r.at + HEADER + r.len
        j++
      }
      let span: Uint8Array | OutpostError
      try {
        span = this.span(first, end)
      } catch (err) {
        span = err as OutpostError
      }
      for (; i < j; i++) {
        const r = refs[i]!
        out.push(span instanceof OutpostError ? span : check(span.subarray(r.at - first.at, r.at - first.at + HEADER + r.len), r, this.dir))
      }
    }
    return out
  }

  close(): void {
    for (const f of this.files.values()) {
      if (f.fd !== undefined) fs.closeSync(f.fd)
      f.fd = undefined
    }
  }

  private span(first: BodyRef, end: number): Uint8Array {
    const f = this.files.get(first.file)
    const name = path.join(this.dir, bodyFileName(first.file))
    if (f === undefined) throw new OutpostError('outbox_corrupt', `outbox: message ${first.id} names body file ${name}, which the store does not know`)
    const buf = Buffer.allocUnsafe(end - first.at)
    try {
      f.fd ??= fs.openSync(name, 'r')
      const n = fs.readSync(f.fd, buf, 0, buf.length, first.at)
      return buf.subarray(0, n)
    } catch (cause) {
      throw new OutpostError('outbox_corrupt', `outbox: the body of message ${first.id} cannot be read from ${name} (${(cause as Error).message})`, { cause })
    }
  }
}

/** The body in `rec` ([length][crc][body]) if it is whole; a copy, so that a caller keeping it keeps no span or file. */
function check(rec: Uint8Array, r: BodyRef, dir: string): Uint8Array | OutpostError {
  const where = `${path.join(dir, bodyFileName(r.file))} at byte ${r.at}`
  if (rec.length < HEADER + r.len) return new OutpostError('outbox_corrupt', `outbox: the body of message ${r.id} (${where}) is cut short: the file was truncated`)
  const view = Buffer.from(rec.buffer, rec.byteOffset, rec.byteLength)
  const body = view.subarray(HEADER)
  if (view.readUInt32BE(0) !== r.len || view.readUInt32BE(4) !== crc32(body)) {
    return new OutpostError('outbox_corrupt', `outbox: the body of message ${r.id} (${where}) is damaged (length or CRC does not match)`)
  }
  return new Uint8Array(body)
}
