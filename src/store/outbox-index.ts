/**
 * Where the outbox's waiting messages live between journal and snapshot: new ones in memory
 * ("hot"), those that outlived a snapshot in the store ("stored"): records in body files (store
 * format 4, outbox-records.ts) or, while an upgrade may roll back to an older outpost, sql.js
 * rows (formats 1-3, outbox-rows.ts).
 *
 *   committed op ─▶ enqueue: hot map (no store work on the hot path)
 *                   remove / attempt: hot map, or the stored message's
 *   snapshot     ─▶ syncToStore(): the hot survivors go to the store (their bodies into the
 *                   snapshot's body file), memory freed
 *   open         ─▶ the stored messages as the snapshot has them; the journal after it refills the hot map
 *
 * Every stored message was enqueued before every hot one, so per destination FIFO order is
 * "stored by seq, then the hot map in insertion (= seq) order". In steady operation most
 * messages are acknowledged within milliseconds and never reach the store.
 */
import type { Database } from 'sql.js'
import type { BodyStore } from './outbox-bodies'
import { DestQueue } from './outbox-queue'
import { StoredRecords } from './outbox-records'
import { StoredRows } from './outbox-rows'
import type { LiveEntry, OutboxLayout, StoredMessages } from './outbox-table'

export type { LiveEntry } from './outbox-table'

export interface DestinationStats {
  count: number
  bytes: number
  /** createdAt of the oldest waiting message (ms since the epoch). */
  oldest: number
}

export class OutboxIndex {
  private readonly hot = new Map<string, LiveEntry>()
  private readonly hotByDest = new Map<string, DestQueue>()
  private hotBytes = 0
  private stored: StoredMessages
  /** The stored messages were moved from rows to records and no snapshot has written that yet (one at close must, even with nothing else new). */
  convertedAtOpen = false

  /** `db` must have been through prepareOutboxTable(), which gave `layout`. */
  constructor(private readonly db: Database, private readonly bodies: BodyStore, private readonly warn: (message: string) => void, layout: OutboxLayout = 'records') {
    this.stored = layout === 'records' ? StoredRecords.load(db, bodies, warn) : new StoredRows(db, bodies, warn, layout)
  }

  get layout(): OutboxLayout {
    return this.stored.layout
  }

  /**
   * Move stored rows (formats 1-3) to records (format 4): in memory now, their bodies read from
   * where they are; the next snapshot writes them as records and drops the table.
   */
  useRecords(): void {
    const rows = this.stored
    if (!(rows instanceof StoredRows)) return
    this.stored = StoredRecords.fromRows(this.db, this.bodies, this.warn, rows.toRecords())
    this.convertedAtOpen = true
  }

  /** The highest seq in use, stored or hot. */
  maxSeq(): number {
    let max = this.stored.maxSeq()
    for (const e of this.hot.values()) if (e.seq > max) max = e.seq
    return max
  }

  get count(): number {
    return this.stored.count + this.hot.size
  }

  get bytes(): number {
    return this.stored.bytes + this.hotBytes
  }

  /** Bytes of message bodies held in memory (not yet moved to the store by a snapshot). */
  get inMemoryBytes(): number {
    return this.hotBytes
  }

  has(id: string): boolean {
    return this.hot.has(id) || this.stored.has(id)
  }

  /** Add a committed message (ignored if the id is already there). */
  add(e: LiveEntry): void {
    // The outbox refuses known ids before journaling; replay never meets a stored id again
    // (a snapshot covers exactly the segments before the ones replayed).
    if (this.hot.has(e.id)) return
    this.hot.set(e.id, e)
    let q = this.hotByDest.get(e.dest)
    if (q === undefined) this.hotByDest.set(e.dest, (q = new DestQueue()))
    q.add(e)
    this.hotBytes += e.body.length
  }

  /** Forget a message; returns its size, or 0 when it was not there. */
  remove(id: string): number {
    const e = this.hot.get(id)
    if (e === undefined) return this.stored.remove(id)
    this.hot.delete(id)
    const q = this.hotByDest.get(e.dest)
    q?.delete(e)
    if (q?.size === 0) this.hotByDest.delete(e.dest)
    this.hotBytes -= e.body.length
    return e.body.length
  }

  /** Forget messages (the removals of one commit): stored ones together (a share of one statement each, in rows). */
  removeAll(ids: string[]): void {
    let stored: string[] | undefined
    for (const id of ids) {
      if (this.hot.has(id)) this.remove(id)
      else (stored ??= []).push(id)
    }
    if (stored !== undefined) this.stored.removeAll(stored)
  }

  attempt(id: string, attempts: number, nextAt: number): void {
    const e = this.hot.get(id)
    if (e !== undefined) {
      e.attempts = attempts
      e.nextAt = nextAt
    } else {
      this.stored.attempt(id, attempts, nextAt)
    }
  }

  get(id: string): LiveEntry | undefined {
    return this.hot.get(id) ?? this.stored.get(id)
  }

  /**
   * The first `limit` entries for a destination after seq `after`, FIFO: stored ones first,
   * then hot ones. (The delivery loop passes the last seq it handed out, so each call reads
   * only what is new.)
   */
  head(dest: string, limit: number, after = 0): LiveEntry[] {
    const out = this.stored.hasDest(dest) ? this.stored.head(dest, limit, after) : []
    this.hotByDest.get(dest)?.after(after, limit, out)
    return out
  }

  /** Per destination: messages waiting, their body bytes and the oldest createdAt (for `outpost status`). */
  perDestination(): Map<string, DestinationStats> {
    const out = new Map<string, DestinationStats>()
    this.stored.perDestination(out)
    for (const [dest, q] of this.hotByDest) {
      if (q.size === 0) continue
      // Kept up by the queue as entries come and go: a poll walks no messages.
      const s = out.get(dest) ?? { count: 0, bytes: 0, oldest: Infinity }
      s.count += q.size
      s.bytes += q.bytes
      s.oldest = Math.min(s.oldest, q.oldest())
      out.set(dest, s)
    }
    return out
  }

  destinations(): string[] {
    const set = new Set(this.hotByDest.keys())
    for (const d of this.stored.destinations()) set.add(d)
    return [...set].sort()
  }

  all(): LiveEntry[] {
    return [...this.stored.all(), ...this.hot.values()]
  }

  /**
   * Snapshot `file` is being taken: the hot survivors go to the store (their bodies into body
   * file `file`) and from memory. The file is readable at once; BodyStore.flush() must write it
   * before the snapshot is renamed into place.
   */
  syncToStore(file: number): void {
    this.stored.store(file, [...this.hot.values()])
    this.hot.clear()
    this.hotByDest.clear()
    this.hotBytes = 0
    this.convertedAtOpen = false
  }

  free(): void {
    this.stored.free()
  }
}
