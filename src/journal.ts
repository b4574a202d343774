/**
 * An append-only, segmented journal with natural group commit: the durable truth under the
 * outbox (see ../shared/NOTES.md for the measurements behind the design).
 *
 *   append(payload, item) ─▶ queue ─┐  at most one write+fdatasync in flight; the next
 *                                   ▼  batch forms while it runs
 *          one write of the batch ─▶ fdatasync ─▶ onCommit(items) ─▶ callers resolve ─▶ afterCommit()
 *
 * A record is [u32 length][u32 crc32 of payload][payload], big-endian. Replay stops at the
 * first short or bad record of a segment: a torn tail from a crash is dropped, everything
 * before it comes back. Segments are `journal-<n>.log`; rotation starts the next one.
 */
import fs from 'node:fs'
import path from 'node:path'
import { crc32 } from './crc32'
import { OutpostError } from './errors'

const HEADER = 8
/** Most records per batch when the queue starts with an urgent record (see JournalHooks.urgent). */
const URGENT_BATCH = 128
/** A record bigger than this is treated as garbage on replay (no message may be this large). */
const MAX_RECORD = 64 * 1024 * 1024

interface Pending<T> {
  payload: Uint8Array
  item: T
  resolve: () => void
  reject: (err: Error) => void
}

export interface JournalHooks<T> {
  /** Called with each batch once it is on disk, before the callers' promises resolve. */
  onCommit(items: T[]): void
  /** Metrics: how many records each durable batch held. */
  onBatch?(records: number, bytes: number): void
  /** Called between batches, when no write is in flight: the place to rotate and snapshot. */
  afterCommit?(): void
  /**
   * A record someone waits on to answer promptly (a receipt to ACK). When the queue starts with
   * one, the batch is cut at URGENT_BATCH records, so a burst commits in pieces and the first
   * answers go out while the rest is written. Bulk intake keeps whole batches.
   */
  urgent?(item: T): boolean
}

export interface ReplayedSegment {
  segment: number
  records: Uint8Array[]
  /** Bytes after the last good record (a torn tail), dropped. */
  droppedBytes: number
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

/** Read every good record of a segment file, in order. */
export function readSegment(file: string, segment: number): ReplayedSegment {
  const buf = fs.readFileSync(file)
  const records: Uint8Array[] = []
  let off = 0
  while (off + HEADER <= buf.length) {
    const len = buf.readUInt32BE(off)
    const crc = buf.readUInt32BE(off + 4)
    // No record is empty: a zero length is the zero-filled tail a power loss leaves on some filesystems.
    if (len === 0 || len > MAX_RECORD || off + HEADER + len > buf.length) break
    const payload = buf.subarray(off + HEADER, off + HEADER + len)
    if (crc32(payload) !== crc) break
    records.push(payload)
    off += HEADER + len
  }
  return { segment, records, droppedBytes: buf.length - off }
}

export class Journal<T> {
  readonly dir: string
  private hooks: JournalHooks<T>
  private fd: number
  private segment: number
  private offset = 0
  private queue: Pending<T>[] = []
  private flushing = false
  private scheduled = false
  private broken: Error | undefined
  private closed = false
  /** Bytes appended since the last rotation. */
  bytesInSegment = 0

  private constructor(dir: string, segment: number, fd: number, hooks: JournalHooks<T>) {
    this.dir = dir
    this.segment = segment
    this.fd = fd
    this.hooks = hooks
  }

  /** Start writing a fresh segment numbered after every existing one. */
  static create<T>(dir: string, nextSegment: number, hooks: JournalHooks<T>): Journal<T> {
    const fd = openSegment(dir, nextSegment)
    return new Journal(dir, nextSegment, fd, hooks)
  }

  get currentSegment(): number {
    return this.segment
  }

  append(payload: Uint8Array, item: T): Promise<void> {
    if (this.closed) return Promise.reject(new OutpostError('outbox_closed', 'journal: append after close'))
    if (this.broken) return Promise.reject(this.broken)
    return new Promise((resolve, reject) => {
      this.queue.push({ payload, item, resolve, reject })
      if (!this.flushing && !this.scheduled) {
        // Let every append made in this tick join the first batch.
        this.scheduled = true
        queueMicrotask(() => {
          this.scheduled = false
          this.flush().catch((err: unknown) => {
            // Only a bug gets here; never leave a caller waiting forever.
            this.broken ??= err as Error
            for (const p of this.queue.splice(0)) p.reject(this.broken)
          })
        })
      }
    })
  }

  /** Resolves once everything appended so far is on disk. */
  async drain(): Promise<void> {
    while (this.flushing || this.scheduled || this.queue.length > 0) {
      await new Promise<void>((r) => setImmediate(r))
    }
  }

  private async flush(): Promise<void> {
    if (this.flushing) return
    this.flushing = true
    try {
      while (this.queue.length > 0 && !this.broken) {
        let batch = this.queue
        if (batch.length > URGENT_BATCH && this.hooks.urgent?.(batch[0]!.item) === true) batch = this.queue.splice(0, URGENT_BATCH)
        else this.queue = []
        const buf = frameBatch(batch)
        const start = this.offset
        try {
          await writeAll(this.fd, buf, start)
          await new Promise<void>((res, rej) => fs.fdatasync(this.fd, (e) => (e ? rej(e) : res())))
        } catch (cause) {
          const errno = (cause as NodeJS.ErrnoException).code
          const err = errno === 'ENOSPC' || errno === 'EDQUOT' || errno === 'EFBIG'
            ? new OutpostError('disk_full', `journal: no room to write ${segmentName(this.segment)} (${errno}): free space in the data directory; messages already accepted are kept`, { cause })
            : new OutpostError('io', `journal: write to ${segmentName(this.segment)} failed: ${(cause as Error).message}`, { cause })
          this.recoverFromFailedWrite(start, err)
          for (const p of batch) p.reject(err)
          continue
        }
        this.offset += buf.length
        this.bytesInSegment += buf.length
        try {
          this.hooks.onCommit(batch.map((p) => p.item))
          this.hooks.onBatch?.(batch.length, buf.length)
        } catch (err) {
          // The records are durable; a failure to index them is a bug, not a lost write.
          this.broken = err as Error
          for (const p of batch) p.reject(err as Error)
          break
        }
        for (const p of batch) p.resolve()
        try {
          this.hooks.afterCommit?.()
        } catch {
          // afterCommit only schedules maintenance (snapshots); a failure there loses no write.
        }
      }
    } finally {
      this.flushing = false
      if (this.broken) for (const p of this.queue.splice(0)) p.reject(this.broken)
    }
  }

  /** Cut a half-written batch off so later records never sit behind garbage. */
  private recoverFromFailedWrite(start: number, err: OutpostError): void {
    try {
      fs.ftruncateSync(this.fd, start)
    } catch {
      this.broken = err
    }
  }

  /**
   * Close the current segment and start the next. Only call it from afterCommit (or when idle):
   * every record of the closed segment has then been committed and handed to onCommit.
   * Returns the number of the closed segment.
   */
  rotate(): number {
    const closed = this.segment
    const next = closed + 1
    const fd = openSegment(this.dir, next)
    fs.closeSync(this.fd)
    this.fd = fd
    this.segment = next
    this.offset = 0
    this.bytesInSegment = 0
    return closed
  }

  get idle(): boolean {
    return !this.flushing && !this.scheduled && this.queue.length === 0
  }

  async close(): Promise<void> {
    if (this.closed) return
    await this.drain()
    this.closed = true
    fs.closeSync(this.fd)
  }
}

function openSegment(dir: string, n: number): number {
  const fd = fs.openSync(path.join(dir, segmentName(n)), 'w')
  fsyncDir(dir)
  return fd
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function frameBatch<T>(batch: Pending<T>[]): Buffer {
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

function writeAll(fd: number, buf: Buffer, position: number): Promise<void> {
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
