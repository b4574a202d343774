/**
 * When the outbox takes a snapshot, and taking one (the flow is drawn in outbox.ts): after a
 * commit once `checkpointBytes` of journal piled up (snapshotDue), a second after a burst
 * ends (settle), on checkpoint(), and at a clean close.
 */
import type { Database } from 'sql.js'
import type { Journal } from './journal'
import type { BodyStore } from './outbox-bodies'
import type { OutboxIndex } from './outbox-index'
import type { Op } from './outbox-ops'
import type { ReceiverIndex } from './receiver-index'
import { writeSnapshot } from './store-files'

/** How often the journal's pace is looked at while it is written to. */
const QUIET_MS = 1000
/** After a quiet second whose look met a batch in flight: when to look again. */
const BETWEEN_BATCHES_MS = 20
/** At most this many journal bytes in QUIET_MS is quiet (a trickle of retries and receipts). */
const QUIET_BYTES = 64 * 1024

/** The parts of the outbox a snapshot reads and writes. */
export interface SnapshotParts {
  dir: string
  db: Database
  journal: Journal<Op>
  index: OutboxIndex
  receiver: ReceiverIndex
  bodies: BodyStore
  checkpointBytes: number
  dedupWindowMs: number
  now: () => number
  warn: (message: string) => void
  afterBurst: (() => void) | undefined
  /** The snapshot start-up loaded, and how many journal records it replayed after it. */
  recovery: { snapshot: number; replayedRecords: number }
}

export class Snapshots {
  /** The newest durable snapshot. */
  lastSnapshot: number
  /** Whether snapshots may move a format-1 store to body files (keepOldFormat not set, or lifted). */
  newFormat: boolean
  private checkpointing: Promise<void> | undefined
  /** The outbox is closing: no snapshot starts in the background any more. */
  private stopped = false
  /** The body files the newest durable snapshot names (kept while it is the one before the next). */
  private previousBodies: Set<number>
  /** Journal bytes written since afterBurst was last called. */
  private burstBytes = 0
  /** Journal bytes written since the quiet timer last looked. */
  private quietWindowBytes = 0
  /** Armed by a commit: settle() looks at the journal's pace a second later. */
  private quietTimer: NodeJS.Timeout | undefined

  /** The dedup set's run files the newest durable snapshot names. */
  private previousRuns: Set<number>

  constructor(private readonly p: SnapshotParts, lastSnapshot: number, named: Set<number>, namedRuns: Set<number>, newFormat: boolean) {
    this.lastSnapshot = lastSnapshot
    this.previousBodies = named
    this.previousRuns = namedRuns
    this.newFormat = newFormat
  }

  /** A batch of `bytes` went into the journal. */
  written(bytes: number): void {
    this.burstBytes += bytes
    this.quietWindowBytes += bytes
  }

  /** Between journal batches: start a snapshot when one is due, and watch the pace. */
  afterCommit(): void {
    if (this.snapshotDue() && !this.checkpointing && !this.stopped) {
      this.startSnapshot()
    }
    this.armQuietTimer()
  }

  /** Take a snapshot now (waits for in-flight writes); start-up then replays nothing. */
  async checkpoint(): Promise<void> {
    while (this.checkpointing) await this.checkpointing
    await this.p.journal.drain()
    while (!this.p.journal.idle) await this.p.journal.drain()
    if (!this.needsSnapshot()) return
    this.checkpointing = this.snapshotNow().finally(() => { this.checkpointing = undefined })
    await this.checkpointing
  }

  /** At close: no more background snapshots; wait for one under way, write what is pending, and take the last. */
  async close(): Promise<void> {
    this.stopped = true
    while (this.checkpointing) await this.checkpointing
    await this.p.journal.drain()
    // A clean stop leaves one snapshot and nothing to replay: the next start is quick. One
    // that cannot be written (a disk filling up) costs replay time at the next start, no data.
    if (this.needsSnapshot()) await this.snapshotNow().catch((err: unknown) => this.p.warn(`outbox: snapshot at close failed (${(err as Error).message}); the journal keeps the data`))
  }

  /** Stop the quiet timer (the outbox is closed). */
  clearTimer(): void {
    this.stopped = true
    if (this.quietTimer !== undefined) clearTimeout(this.quietTimer)
  }

  /** A snapshot in the background; its failure costs replay time, not data. `then`: after it, failed or not. */
  private startSnapshot(then?: () => void): void {
    this.checkpointing = this.snapshotNow()
      .catch((err: unknown) => this.p.warn(`outbox: snapshot failed (${(err as Error).message}); the journal keeps the data`))
      .finally(() => {
        this.checkpointing = undefined
        if (!this.stopped) then?.()
      })
  }

  /** Look again in a second at how much the journal wrote meanwhile (armed by a commit). */
  private armQuietTimer(ms = QUIET_MS): void {
    if (this.quietTimer !== undefined || this.stopped) return
    this.quietTimer = setTimeout(() => this.settle(), ms)
    this.quietTimer.unref()
  }

  /**
   * Once a second while the journal is written to. A second with next to nothing written (a
   * trickle of retries, no burst) ends a burst. What the burst left in memory is then not in
   * flight, so a snapshot moves it to the store now rather than holding it until the next
   * checkpoint's worth of journal; then, if the burst grew memory, afterBurst gives it back.
   */
  private settle(): void {
    this.quietTimer = undefined
    if (this.stopped) return
    const busy = this.quietWindowBytes > QUIET_BYTES
    this.quietWindowBytes = 0
    // A snapshot still being written is part of the burst.
    if (busy || this.checkpointing) {
      this.armQuietTimer()
      return
    }
    // A snapshot rotates the journal, which is only safe between batches: never under a write
    // in flight (its records would go to the segment the snapshot then deletes, and its offset
    // to the next one). Quiet but a batch in flight (a heartbeat's, a receipt's): look again as
    // soon as it is likely written, not a second later: a trickle on a one-second period (a
    // hello a second, each look armed by the commit before it) met every look, and what a burst
    // left in memory stayed there.
    if (!this.p.journal.idle) {
      this.armQuietTimer(BETWEEN_BATCHES_MS)
      return
    }
    if (this.p.index.inMemoryBytes > this.p.checkpointBytes / 16 && this.p.journal.bytesInSegment > 0) {
      // What the burst grew is given back once that snapshot has moved its messages out of memory.
      this.startSnapshot(() => { if (this.quietWindowBytes <= QUIET_BYTES) this.burstEnded() })
      this.armQuietTimer()
      return
    }
    this.burstEnded()
  }

  /** The journal went quiet (and what the burst left in memory is in the store): afterBurst, for a burst of a checkpoint or more. */
  private burstEnded(): void {
    if (this.burstBytes >= this.p.checkpointBytes) {
      this.burstBytes = 0
      this.p.afterBurst?.()
    }
  }

  /**
   * Rotate the journal and export sql.js synchronously (the state then matches exactly the
   * closed segments), then write the body files and the snapshot and drop what it covers.
   */
  private async snapshotNow(): Promise<void> {
    // Not on a full disk: it could not be written, and rotating would leave the reserve's room behind.
    if (this.p.journal.diskFull) return
    const covered = this.p.journal.rotate()
    if (this.newFormat && this.p.index.layout !== 'records') this.p.index.useRecords()
    if (this.newFormat && this.p.receiver.seenLayout === 'rows') this.p.receiver.useRuns()
    this.p.index.syncToStore(covered)
    this.p.receiver.syncToStore(this.p.now() - this.p.dedupWindowMs)
    // The body files this snapshot names; any other goes once it is durable.
    const inUse = this.p.bodies.inUse()
    const runsInUse = this.p.receiver.runFiles()
    const filesFirst = async (): Promise<void> => {
      await this.p.bodies.flush()
      await this.p.receiver.flushRunFiles()
    }
    if (!(await writeSnapshot(this.p.dir, covered, this.lastSnapshot, this.p.db.export(), this.p.warn, filesFirst))) return
    this.lastSnapshot = covered
    // The snapshot before this one is kept (what a damaged one falls back to), and its body and run files with it.
    const kept = new Set([...inUse, ...this.previousBodies])
    this.previousBodies = inUse
    const keptRuns = new Set([...runsInUse, ...this.previousRuns])
    this.previousRuns = runsInUse
    await this.p.bodies.removeExcept(kept).catch((err: unknown) => this.p.warn(`outbox: removing unused body files failed (${(err as Error).message}); the next snapshot retries`))
    await this.p.receiver.removeRunFilesExcept(keptRuns).catch((err: unknown) => this.p.warn(`outbox: removing unused run files failed (${(err as Error).message}); the next snapshot retries`))
  }

  /**
   * In store format 4 a snapshot is due at every `checkpointBytes` of journal: the messages in
   * memory become records in its body file, which costs little more than writing them.
   * In formats 1-3 (keepOldFormat) a snapshot moves the messages still in memory into sql.js, a row each (~4-6 µs a row, and
   * one statement each to remove later): the dearest part of accepting a message that outlives
   * it. So once `checkpointBytes` of journal have piled up it waits while more than a sixteenth
   * of that is in memory: a burst in flight (likely acknowledged within moments, never to touch
   * sql.js) or a backlog still arriving (moved in one go by the quiet timer a second after the
   * burst ends, off the path of the messages being accepted). Memory bounds the wait (as much in
   * memory as the checkpoint size: a backlog of 100k messages held in memory instead cost an
   * agent ~100 MB more RSS), and so does replay time at start-up (four checkpoints of journal).
   */
  snapshotDue(): boolean {
    const journal = this.p.journal.bytesInSegment
    if (journal < this.p.checkpointBytes) return false
    // Records (format 4) cost ~1 µs a message, not a row's ~5: no reason to hold a burst in memory.
    if (this.p.index.layout === 'records') return true
    const hot = this.p.index.inMemoryBytes
    return hot <= this.p.checkpointBytes / 16 || hot >= this.p.checkpointBytes || journal >= 4 * this.p.checkpointBytes
  }

  /** Whether a start-up now would replay anything. */
  needsSnapshot(): boolean {
    return this.p.journal.bytesInSegment > 0 || ((this.p.recovery.replayedRecords > 0 || this.p.receiver.migratedAtOpen || this.p.index.convertedAtOpen) && this.lastSnapshot === this.p.recovery.snapshot)
  }
}
