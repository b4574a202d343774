/**
 * The journal's files: the segment being written (its descriptor, where the next batch goes,
 * how much preallocated room it has) and the spare that becomes the next one (journal.ts draws
 * the whole flow).
 *
 *   create ─▶ segment n (empty, grows by appending) ─┐ spare ready: renamed over segment n
 *   spare ─▶ zeros in 1 MiB writes ─▶ fsync ─▶ ready ┘ (or n+1 once n holds records)
 *   a batch that does not fit: the ready spare becomes the next segment; none ready: the segment grows
 *   rotate(): the ready spare, else an empty file; the next spare starts once half the room is used
 */
import fs from 'node:fs'
import path from 'node:path'
import { discard, fillWithZeros, fsyncDir, segmentName } from './journal-segments'

/** The preallocated file the next segment will be. */
type Spare =
  | { type: 'none' }
  | { type: 'preparing'; done: Promise<void> }
  | { type: 'ready'; fd: number; file: string }

/** A file of zeros to become a segment: its descriptor, its name, its size. */
export interface Prepared { fd: number; file: string; bytes: number }

/** What the files ask of the journal that writes them. */
export interface FilesHost {
  /** Whether a spare may be prepared now (not on a full disk, not closed, not broken). */
  mayPrepare(): boolean
  /** Whether the journal was closed (a spare made meanwhile is thrown away). */
  closed(): boolean
  /** Whether no batch is being written or waiting (a ready spare may replace an empty segment at once). */
  idle(): boolean
  /** Whether a failure that is a bug stopped the journal. */
  broken(): boolean
}

export class JournalFiles {
  readonly dir: string
  readonly segmentBytes: number
  fd: number
  segment: number
  /** Where the next batch goes. */
  offset = 0
  /** Bytes of the current segment that were preallocated (zeros on disk); 0 when it grows by appending. */
  room = 0
  private spare: Spare = { type: 'none' }
  /** A spare failed (a full disk, say): no new one until the next rotation. */
  spareBlocked = false
  /** The current segment's name is not yet known to be durable (its directory fsync failed). */
  private dirPending = false
  private readonly host: FilesHost

  constructor(dir: string, segment: number, fd: number, segmentBytes: number, host: FilesHost) {
    this.dir = dir
    this.segment = segment
    this.fd = fd
    this.segmentBytes = segmentBytes
    this.host = host
  }

  /** A spare is ready: a batch that does not fit the room moves to it. */
  get spareReady(): boolean {
    return this.spare.type === 'ready'
  }

  /** Before a commit: make the current segment's name durable if starting it could not. */
  syncDirIfPending(): void {
    if (this.dirPending) {
      fsyncDir(this.dir)
      this.dirPending = false
    }
  }

  /** Cut a half-written batch off so later records never sit behind garbage; false when that failed too. */
  truncateTo(start: number): boolean {
    try {
      fs.ftruncateSync(this.fd, start)
      // The zeros after `start` are gone with it: from here the segment grows by appending.
      this.room = Math.min(this.room, start)
      return true
    } catch {
      return false
    }
  }

  /** Close the current segment and start the next; returns the number of the closed one. */
  rotate(): number {
    const closed = this.segment
    this.startSegment(closed + 1)
    this.spareBlocked = false
    this.prepareSpare()
    return closed
  }

  /**
   * Between batches: move to the ready spare. An empty segment is replaced by it under the same
   * number; one holding records is closed, and the spare becomes the next number. Either way
   * every record written so far stays in a segment numbered at most the current one, so a
   * later rotate() and its snapshot still cover exactly the closed segments.
   */
  advance(prepared?: Prepared): void {
    try {
      this.startSegment(this.offset === 0 ? this.segment : this.segment + 1, prepared)
    } catch {
      // No new file could be made (nothing changed): the current segment grows instead.
    }
  }

  /**
   * Make segment `n` the one written: `prepared` (the reserve) or the ready spare renamed into
   * place, else a new empty file. Throws only before anything changed. The directory fsync that
   * makes the name durable is retried before the next commit if it fails here (see dirPending).
   */
  private startSegment(n: number, prepared?: Prepared): void {
    const file = path.join(this.dir, segmentName(n))
    let fd: number | undefined
    let room = 0
    if (prepared === undefined && this.spare.type === 'ready') {
      prepared = { fd: this.spare.fd, file: this.spare.file, bytes: this.segmentBytes }
      this.spare = { type: 'none' }
    }
    if (prepared !== undefined) {
      try {
        fs.renameSync(prepared.file, file)
        fd = prepared.fd
        room = prepared.bytes
      } catch {
        discard(prepared.fd, prepared.file)
      }
    }
    // Never over an existing file: a segment is only ever made new ('wx'), so no write can empty one.
    fd ??= fs.openSync(file, 'wx')
    fs.closeSync(this.fd)
    this.fd = fd
    this.segment = n
    this.offset = 0
    this.room = room
    this.dirPending = true
    try {
      fsyncDir(this.dir)
      this.dirPending = false
    } catch {
      // The next batch tries again and fails with `io` if it still cannot.
    }
  }

  /**
   * Fill a spare with zeros in the background when the current segment has used half its room
   * (or has none), so it is ready before it is needed and rotation never waits for it.
   */
  prepareSpare(): void {
    if (this.segmentBytes === 0 || this.spare.type !== 'none' || this.spareBlocked || !this.host.mayPrepare()) return
    if (this.room > 0 && this.offset < this.room / 2) return
    const file = path.join(this.dir, `journal-spare-${process.pid}-${Math.random().toString(36).slice(2, 10)}.tmp`)
    const done = fillWithZeros(file, this.segmentBytes, () => this.host.closed()).then(
      (fd) => {
        if (this.host.closed()) {
          this.spare = { type: 'none' }
          discard(fd, file)
          return
        }
        this.spare = { type: 'ready', fd, file }
        // Idle on a segment without room (the first after start-up): move over now, not at the next batch.
        if (this.room === 0 && this.host.idle() && !this.host.broken()) this.advance()
      },
      () => {
        // Out of space, most likely: give the room back; the journal grows by appending meanwhile.
        this.spare = { type: 'none' }
        this.spareBlocked = true
        discard(undefined, file)
      },
    )
    this.spare = { type: 'preparing', done }
  }

  /** After the last batch: close the segment (an empty one gives its zeros back) and drop the spare. */
  async close(): Promise<void> {
    // A segment nothing was written to is only zeros: give the room back while stopped.
    if (this.offset === 0) {
      try {
        fs.ftruncateSync(this.fd, 0)
      } catch { /* an empty segment of zeros is harmless */ }
    }
    fs.closeSync(this.fd)
    if (this.spare.type === 'preparing') await this.spare.done
    if (this.spare.type === 'ready') {
      // An unused spare is only zeros: not worth the disk space while stopped.
      discard(this.spare.fd, this.spare.file)
      this.spare = { type: 'none' }
    }
  }
}
