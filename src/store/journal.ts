/**
 * An append-only, segmented journal with natural group commit: the durable truth under the
 * outbox (see ../shared/NOTES.md for the measurements behind the design).
 *
 *   append(payload, item) ─▶ queue ─┐  at most one write+fdatasync in flight; the next
 *                                   ▼  batch forms while it runs
 *          one write of the batch ─▶ fdatasync ─▶ onCommit(items) ─▶ callers resolve ─▶ afterCommit()
 *
 * Records nobody waits on promptly (hooks.lazy: removals) do not start a batch by themselves for
 * LAZY_MS: they ride with the next record someone waits on, which then never queues behind an
 * fdatasync of theirs. Small batches are copied into the page cache synchronously (one thread-pool trip fewer).
 *
 * A record is [u32 length][u32 crc32 of payload][payload], big-endian. Replay stops at the
 * first short, zero-length or bad record of a segment: a torn tail from a crash is dropped,
 * everything before it comes back. Segments are `journal-<n>.log`; rotation starts the next one.
 *
 * Segments are preallocated: a spare file (`journal-spare-*.tmp`, a name replay ignores) is
 * filled with zeros and fsynced in the background, then renamed into place when a segment
 * starts. A commit then overwrites blocks that are already allocated and on disk, so its
 * fdatasync flushes data only, no size or extent change (~25% cheaper here, see docs/store.md). The
 * zeros after the last record read as the end of the segment, exactly like a torn tail.
 *
 *   (journal-files.ts: the segment written and its spare)
 *
 * A full disk (reserve.ts): with `reserveBytes`, a reserve of zeros is kept beside the segments.
 * The first write that fails with ENOSPC puts the journal in disk-full mode: the records of the
 * failed batch that settle what is already accepted (hooks.settles: removals, replies, receipts)
 * are written again, into the reserve made the next segment; all others (new messages) are
 * refused with `disk_full` until the reserve has been made again with a segment's worth to spare.
 *
 *   ENOSPC ─▶ full: settling records ─▶ reserve renamed into place ─▶ written over its zeros
 *                   other records ─▶ disk_full
 */
import fs from 'node:fs'
import path from 'node:path'
import { OutpostError } from '../errors'
import { JournalFiles } from './journal-files'
import { frameBatch, freeBytes, HEADER, openSegment, segmentName, SPARE_RE, writeAll, writeAllSync } from './journal-segments'
import { Reserve } from './reserve'

export { fsyncDir, listSegments, readSegment, segmentName, type ReplayedSegment } from './journal-segments'

/** Most records per batch when the queue starts with an urgent record (see JournalHooks.urgent). */
const URGENT_BATCH = 128
/**
 * How long records nobody waits on promptly (JournalHooks.lazy) may wait for a record someone
 * does wait on, to share its write and fdatasync instead of holding up the next one.
 */
const LAZY_MS = 5
/** Batches up to this size are written synchronously (the fdatasync stays asynchronous). */
const SYNC_WRITE_MAX = 16 * 1024
/** Free space beyond the reserve the disk must have before the journal leaves disk-full mode (at least). */
const FULL_MARGIN = 1024 * 1024

interface Pending<T> {
  payload: Uint8Array
  item: T
  lazy: boolean
  /** Already put back once after a failed write (disk-full mode): not again. */
  retried?: boolean
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
  /**
   * A record nobody waits on promptly (a removal after an ACK). Such records alone do not start
   * a batch for up to LAZY_MS: they join the next record someone waits on, which then does not
   * queue behind an fdatasync of theirs. drain() and close() write them at once.
   */
  lazy?(item: T): boolean
  /**
   * A record that settles what is already accepted (a removal, a reply, a receipt): on a full
   * disk it is still written, from the reserve. Others are refused with `disk_full` meanwhile.
   */
  settles?(item: T): boolean
}

export interface JournalOptions {
  /** Bytes of zeros a segment is prepared with before records go in; 0 turns preallocation off. */
  segmentBytes?: number
  /** Bytes of zeros kept for a full disk (journal-reserve.dat); 0: none, and no disk-full mode. */
  reserveBytes?: number
  /** Where the journal says that the disk filled up, and that space came back. */
  warn?: (message: string) => void
  /** Free bytes on the disk holding the directory (tests inject one). */
  free?: (dir: string) => Promise<number>
}

export class Journal<T> {
  readonly dir: string
  private hooks: JournalHooks<T>
  /** The segment being written and the spare that becomes the next one. */
  private readonly files: JournalFiles
  private queue: Pending<T>[] = []
  private flushing = false
  /** A batch is being written and synced: the segment must not change under it. */
  private writing = false
  private scheduled = false
  /** Queued records that are not lazy: any of them starts a batch. */
  private eager = 0
  /** Write lazy records without waiting for company (their time is up, or drain() asked). */
  private force = false
  private lazyTimer: NodeJS.Timeout | undefined
  private broken: Error | undefined
  private closed = false
  /** The reserve for a full disk, and the disk-full mode: only settling records are written meanwhile. */
  private readonly reserve: Reserve
  /** Bytes appended since the last rotate() (a segment switched to on its own does not reset it). */
  bytesInSegment = 0

  private constructor(dir: string, segment: number, fd: number, hooks: JournalHooks<T>, opts: JournalOptions) {
    this.dir = dir
    this.hooks = hooks
    const segmentBytes = Math.ceil((opts.segmentBytes ?? 0) / 4096) * 4096
    this.files = new JournalFiles(dir, segment, fd, segmentBytes, {
      mayPrepare: () => !this.reserve.full && !this.closed && !this.broken,
      closed: () => this.closed,
      idle: () => this.idle,
      broken: () => this.broken !== undefined,
    })
    this.reserve = new Reserve({
      dir, bytes: opts.reserveBytes ?? 0, margin: Math.max(segmentBytes, FULL_MARGIN), free: opts.free ?? freeBytes, warn: opts.warn ?? (() => {}),
      onSpace: () => {
        this.files.spareBlocked = false
        this.files.prepareSpare()
      },
    })
  }

  /**
   * Start writing a fresh segment numbered after every existing one. It starts empty (start-up
   * does not wait for zeros); with `segmentBytes`, a preallocated spare takes its place once ready.
   */
  static create<T>(dir: string, nextSegment: number, hooks: JournalHooks<T>, opts: JournalOptions = {}): Journal<T> {
    // Spares left by a process that died: never part of the journal.
    for (const f of fs.readdirSync(dir)) if (SPARE_RE.test(f)) fs.rmSync(path.join(dir, f), { force: true })
    const fd = openSegment(dir, nextSegment)
    const j = new Journal(dir, nextSegment, fd, hooks, opts)
    j.files.prepareSpare()
    j.reserve.start()
    return j
  }

  get currentSegment(): number {
    return this.files.segment
  }

  append(payload: Uint8Array, item: T): Promise<void> {
    if (this.closed) return Promise.reject(new OutpostError('outbox_closed', 'journal: append after close'))
    if (this.broken) return Promise.reject(this.broken)
    if (this.reserve.full && !this.settles(item)) return Promise.reject(this.refusal())
    return new Promise((resolve, reject) => {
      const lazy = this.hooks.lazy?.(item) === true
      this.queue.push({ payload, item, lazy, resolve, reject })
      if (!lazy) this.eager++
      this.kick()
    })
  }

  /**
   * Several records appended in one call, one promise for the lot: resolves once all are on
   * disk; when one fails, rejects with its error once every one of them is settled (the others
   * may be written). Appended together, they share a batch unless urgent records ahead cut it.
   */
  appendAll(payloads: readonly Uint8Array[], items: readonly T[]): Promise<void> {
    if (this.closed) return Promise.reject(new OutpostError('outbox_closed', 'journal: append after close'))
    if (this.broken) return Promise.reject(this.broken)
    if (this.reserve.full && items.some((item) => !this.settles(item))) return Promise.reject(this.refusal())
    if (payloads.length === 0) return Promise.resolve()
    return new Promise((resolve, reject) => {
      let left = payloads.length
      let failure: Error | undefined
      const settled = (): void => { if (--left === 0) failure === undefined ? resolve() : reject(failure) }
      const failed = (err: Error): void => { failure ??= err; settled() }
      for (let i = 0; i < payloads.length; i++) {
        const item = items[i]!
        const lazy = this.hooks.lazy?.(item) === true
        this.queue.push({ payload: payloads[i]!, item, lazy, resolve: settled, reject: failed })
        if (!lazy) this.eager++
      }
      this.kick()
    })
  }

  /** Start a batch unless one is under way or only lazy records wait (they get LAZY_MS). */
  private kick(): void {
    if (this.flushing || this.scheduled || this.queue.length === 0) return
    if (this.eager === 0 && !this.force) {
      this.lazyTimer ??= setTimeout(() => {
        this.lazyTimer = undefined
        this.force = true
        this.kick()
      }, LAZY_MS)
      return
    }
    // Let every append made in this tick join the first batch.
    this.scheduled = true
    queueMicrotask(() => {
      this.scheduled = false
      this.flush().catch((err: unknown) => {
        // Only a bug gets here; never leave a caller waiting forever.
        this.broken ??= err as Error
        this.rejectQueued(this.broken)
      })
    })
  }

  private rejectQueued(err: Error): void {
    if (this.lazyTimer) clearTimeout(this.lazyTimer)
    this.lazyTimer = undefined
    this.eager = 0
    for (const p of this.queue.splice(0)) p.reject(err)
  }

  /** Resolves once everything appended so far is on disk (lazy records included, at once). */
  async drain(): Promise<void> {
    while (this.flushing || this.scheduled || this.queue.length > 0) {
      if (!this.force && this.queue.length > 0) {
        this.force = true
        this.kick()
      }
      await new Promise<void>((r) => setImmediate(r))
    }
  }

  private async flush(): Promise<void> {
    if (this.flushing) return
    this.flushing = true
    try {
      while (this.queue.length > 0 && !this.broken) {
        if (this.eager === 0 && !this.force) break // lazy records only: they wait for company (see finally)
        if (this.lazyTimer) clearTimeout(this.lazyTimer)
        this.lazyTimer = undefined
        let batch = this.queue
        if (batch.length > URGENT_BATCH && this.hooks.urgent?.(batch[0]!.item) === true) batch = this.queue.splice(0, URGENT_BATCH)
        else this.queue = []
        for (const p of batch) if (!p.lazy) this.eager--
        if (this.reserve.full) batch = this.fitReserve(batch)
        if (this.queue.length === 0) this.force = false
        if (batch.length === 0) continue
        const buf = frameBatch(batch)
        // Into preallocated room when there is some: a batch that does not fit starts the ready spare.
        const files = this.files
        if (files.spareReady && files.offset + buf.length > files.room) files.advance()
        const start = files.offset
        const fd = files.fd
        this.writing = true
        try {
          files.syncDirIfPending()
          // A small batch is a copy into the page cache (over allocated blocks): done in place,
          // it saves a thread-pool round trip, which is most of a lone record's write time.
          if (buf.length <= SYNC_WRITE_MAX) writeAllSync(fd, buf, start)
          else await writeAll(fd, buf, start)
          await new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())))
          this.writing = false
        } catch (cause) {
          this.writing = false
          const errno = (cause as NodeJS.ErrnoException).code
          const err = errno === 'ENOSPC' || errno === 'EDQUOT' || errno === 'EFBIG'
            ? new OutpostError('disk_full', `journal: no room to write ${segmentName(files.segment)} (${errno}): free space in the data directory; messages already accepted are kept`, { cause })
            : new OutpostError('io', `journal: write to ${segmentName(files.segment)} failed: ${(cause as Error).message}`, { cause })
          this.recoverFromFailedWrite(start, err)
          if (err.code === 'disk_full' && this.reserve.bytes > 0 && !this.broken) {
            files.spareBlocked = true
            this.reserve.enterFull(errno ?? 'ENOSPC')
            // What settles earlier messages gets another go, from the reserve; new messages are refused.
            const again = new Set(this.reserve.ready ? batch.filter((p) => p.retried !== true && this.settles(p.item)) : [])
            for (const p of batch) if (!again.has(p)) p.reject(err)
            for (const p of again) p.retried = true
            this.requeue([...again])
            continue
          }
          for (const p of batch) p.reject(err)
          continue
        }
        files.offset += buf.length
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
        files.prepareSpare()
      }
    } finally {
      this.flushing = false
      if (this.broken) this.rejectQueued(this.broken)
      else this.kick()
    }
  }

  private settles(item: T): boolean {
    return this.hooks.settles?.(item) === true
  }

  private refusal(): OutpostError {
    return new OutpostError('disk_full', `journal: the disk holding ${this.dir} is full: new messages are refused until space is freed (deliveries, replies and receipts are still recorded while the reserve lasts); messages already accepted are kept`)
  }

  /** Put records back at the head of the queue (they go in the next batch). */
  private requeue(records: Pending<T>[]): void {
    if (records.length === 0) return
    this.queue.unshift(...records)
    for (const p of records) if (!p.lazy) this.eager++
    this.force = true
  }

  /**
   * On a full disk: the settling records of a batch (the rest refused), moved into the reserve
   * when the segment has no room left, and cut to what fits in the room; what does not fit goes
   * back to the queue. A record that fits nowhere is still tried (the write may find space).
   */
  private fitReserve(batch: Pending<T>[]): Pending<T>[] {
    const keep: Pending<T>[] = []
    for (const p of batch) {
      if (this.settles(p.item)) keep.push(p)
      else p.reject(this.refusal())
    }
    if (keep.length === 0) return keep
    const first = HEADER + keep[0]!.payload.length
    if (this.files.offset + first > this.files.room && this.reserve.ready) this.files.advance(this.reserve.take())
    let end = this.files.offset
    let n = 0
    while (n < keep.length && end + HEADER + keep[n]!.payload.length <= this.files.room) end += HEADER + keep[n++]!.payload.length
    if (n === 0) n = 1
    this.requeue(keep.splice(n))
    return keep
  }

  /** Whether the disk filled up and new messages are refused (reserve.ts). */
  get diskFull(): boolean {
    return this.reserve.full
  }

  /** Bytes of reserve ready for a full disk (0 while it is in use or being made). */
  get reserveReady(): number {
    return this.reserve.ready ? this.reserve.bytes : 0
  }

  /** Cut a half-written batch off so later records never sit behind garbage. */
  private recoverFromFailedWrite(start: number, err: OutpostError): void {
    if (!this.files.truncateTo(start)) this.broken = err
  }

  /**
   * Close the current segment and start the next. Only call it from afterCommit (or when idle):
   * every record of the closed segment has then been committed and handed to onCommit.
   * Returns the number of the closed segment.
   */
  rotate(): number {
    // Under a write, the batch's records would land in the segment a snapshot then deletes.
    if (this.writing) throw new OutpostError('io', 'journal: rotate() while a batch is being written (a bug: rotate between commits)')
    const closed = this.files.rotate()
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
    // Kept while stopped: a restart on a full disk still has it.
    await this.reserve.close()
    await this.files.close()
  }
}
