/**
 * The durable outbox: messages waiting for their receiver's ACK, per-destination FIFO order,
 * and the receiver's dedup set. The journal makes them durable; sql.js holds the snapshots.
 *
 *   enqueue/remove/attempt ─▶ journal (group-committed, fdatasync) ─▶ live index (outbox-index.ts) ─▶ resolved
 *   markSeen / receive / startRun / finishRun ─▶ journal ─▶ dedup set (seen-runs.ts) and inbox ─▶ resolved
 *   every `checkpointBytes` of journal: rotate segment ─▶ index synced into sql.js (bodies into
 *   bodies-<n>.dat, outbox-bodies.ts; new dedup keys into a run, seen-runs.ts) ─▶ db.export() ─▶
 *   body and run files written (fsync) ─▶ snapshot-<n>.db (tmp, fsync, rename, fsync dir) ─▶
 *   segments ≤ n and unused body and run files deleted
 *   open: newest snapshot ─▶ replay later segments (torn tail dropped) ─▶ ready
 *
 * Nothing is visible to readers (head, get, hasSeen) before it is on disk.
 * What a record does to memory is outbox-apply.ts; when and how snapshots are taken, outbox-snapshots.ts.
 *
 * The sender's record of its requests (recordRequest / sentRequest: which node each went to and
 * which reply method it named, what authorises a reply) lives in the same `seen` set under keys
 * that start with `!`: below every ULID, and never an id this node receives (receive refuses it).
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Database } from 'sql.js'
import { OutpostError } from '../errors'
import { Journal } from './journal'
import { acquireLock, type Lock } from './lock'
import { BodyStore } from './outbox-bodies'
import { applyBatch, applyOp, entry, isLazyOp, isUrgentOp, reservedId, SENT_PREFIX, sentKey, settlesOp } from './outbox-apply'
import { OutboxIndex, type DestinationStats } from './outbox-index'
import { PendingMessages } from './outbox-pending'
import { FORMAT_WAITING_RECORDS, prepareOutboxTable } from './outbox-table'
import { RECEIVER_TABLES, ReceiverIndex, type InboxEntry } from './receiver-index'
import { encodeOp, messageRecord, OP_ATTEMPT, OP_ENQUEUE_ROUTED, OP_INBOX_ADD, OP_INBOX_DONE, OP_INBOX_START, OP_REMOVE, OP_SEEN, type Op, type Route } from './outbox-ops'
import { Snapshots } from './outbox-snapshots'
import { loadSnapshot, replayJournal, type JournalDamage } from './store-files'

/** Most bytes a journal segment is preallocated with (each is zero-filled once before use). */
const SEGMENT_BYTES = 4 * 1024 * 1024

export type { Route } from './outbox-ops'
import type { EnqueueInput, OutboxEntry, OutboxOptions, OutboxStats } from './outbox-types'
export type { EnqueueInput, OutboxEntry, OutboxOptions, OutboxStats } from './outbox-types'

export type { InboxEntry } from './receiver-index'
export type { JournalDamage } from './store-files'
export type { DestinationStats } from './outbox-index'

/**
 * The store is one class; each part of the message path sees only its facet of it.
 * Delivery (the send side) reads what waits per destination and settles it.
 */
export type OutboxFacet = Pick<Outbox, 'destinations' | 'head' | 'headView' | 'get' | 'remove' | 'removeAll' | 'recordAttempt'>
/** The dispatcher (the receive side): the dedup set, the inbox and its runs, the sender's record of its requests. */
export type InboxFacet = Pick<Outbox, 'hasSeen' | 'receive' | 'startRun' | 'finishRun' | 'sentRequest'>

export class Outbox {
  readonly dir: string
  private readonly db: Database
  private readonly journal: Journal<Op>
  private readonly lock: Lock
  private readonly maxBytes: number
  private readonly checkpointBytes: number
  private readonly dedupWindowMs: number
  private readonly now: () => number
  private readonly warn: (message: string) => void
  private readonly index: OutboxIndex
  private readonly bodies: BodyStore
  private readonly receiver: ReceiverIndex
  private nextSeq: number
  /** Messages accepted but not yet on disk: their ids and bytes. */
  private readonly pending: PendingMessages
  /** Ids marked seen but not yet on disk. */
  private readonly pendingSeen = new Set<string>()
  /** Records marked lazy by their caller (see receive()): the journal may hold them for company. */
  private readonly lazyOps = new WeakSet<Op>()
  private readonly snapshots: Snapshots
  private closing: Promise<void> | undefined
  private recovery: OutboxStats['recovery']
  /**
   * What start-up found damaged in the journal (with good records after it), for the node to
   * give each lost message its outcome. Empty after a clean start.
   */
  damaged: JournalDamage[] = []

  private constructor(opts: OutboxOptions, db: Database, bodies: BodyStore, index: OutboxIndex, receiver: ReceiverIndex, lock: Lock, lastSnapshot: number, named: Set<number>, nextSegment: number, recovery: OutboxStats['recovery']) {
    this.dir = opts.dir
    this.db = db
    this.bodies = bodies
    this.index = index
    this.receiver = receiver
    this.lock = lock
    this.maxBytes = opts.maxBytes
    this.checkpointBytes = opts.checkpointBytes ?? 8 * 1024 * 1024
    this.dedupWindowMs = opts.dedupWindowMs ?? 24 * 3600 * 1000
    this.now = opts.now ?? Date.now
    this.warn = opts.warn ?? (() => {})
    this.recovery = recovery
    this.nextSeq = index.maxSeq() + 1
    this.pending = new PendingMessages(index, this.maxBytes)
    this.journal = Journal.create<Op>(opts.dir, nextSegment, {
      onCommit: (ops) => applyBatch(this.index, this.receiver, ops, this.pending, this.pendingSeen),
      onBatch: (records, bytes) => {
        this.snapshots.written(bytes)
        opts.onBatch?.(records, bytes)
      },
      urgent: isUrgentOp,
      lazy: (op) => isLazyOp(op) || this.lazyOps.has(op),
      settles: settlesOp,
      afterCommit: () => this.snapshots.afterCommit(),
    }, {
      // Preallocated (zero-filled) segments as large as a checkpoint, capped: disk taken ahead of need stays small.
      segmentBytes: Math.min(this.checkpointBytes, SEGMENT_BYTES),
      reserveBytes: opts.reserveBytes ?? 0,
      warn: this.warn,
      ...(opts.free !== undefined ? { free: opts.free } : {}),
    })
    this.snapshots = new Snapshots({
      dir: this.dir, db, journal: this.journal, index, receiver, bodies, checkpointBytes: this.checkpointBytes, dedupWindowMs: this.dedupWindowMs,
      now: this.now, warn: this.warn, afterBurst: opts.afterBurst, recovery,
    }, lastSnapshot, named, receiver.runFiles(), opts.keepOldFormat !== true)
  }

  /** Open (or create) the outbox in `dir`: load the newest snapshot, replay the journal after it. */
  static async open(opts: OutboxOptions): Promise<Outbox> {
    const started = performance.now()
    fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 })
    const lock = acquireLock(path.join(opts.dir, 'lock'))
    try {
      const db = await loadSnapshot(opts.dir)
      const warn = opts.warn ?? (() => {})
      for (const line of db.damaged) warn(`${line} [outbox_corrupt]`)
      const layout = prepareOutboxTable(db.db, opts.keepOldFormat === true)
      db.db.exec(RECEIVER_TABLES)
      const bodies = new BodyStore(opts.dir, db.snapshot)
      const index = new OutboxIndex(db.db, bodies, warn, layout)
      // Rows of formats 1-3 become records (format 4) unless an upgrade may still roll back.
      if (opts.keepOldFormat !== true && layout !== 'records') index.useRecords()
      const receiver = new ReceiverIndex(db.db, opts.dir, opts.keepOldFormat !== true)
      // The body files the loaded snapshot names, before the journal releases any of them.
      const named = bodies.inUse()
      const r = replayJournal(opts.dir, db.snapshot, (op) => applyOp(index, receiver, op), warn)
      const ob = new Outbox(opts, db.db, bodies, index, receiver, lock, db.snapshot, named, r.nextSegment, { snapshot: db.snapshot, replayedRecords: r.replayed, droppedBytes: r.dropped, damagedRecords: r.damaged.length, damagedSnapshots: db.damaged, ms: 0 })
      ob.damaged = r.damaged
      ob.recovery.ms = performance.now() - started
      return ob
    } catch (err) {
      lock.release()
      throw err
    }
  }

  /** `lazy`: nobody waits on this record promptly; the journal may hold it for company. */
  private append(op: Op, lazy = false): Promise<void> {
    if (lazy) this.lazyOps.add(op)
    if (this.closing) return Promise.reject(new OutpostError('outbox_closed', 'outbox: used after close()'))
    let record: Buffer
    try {
      record = encodeOp(op)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.journal.append(record, op)
  }

  /**
   * Accept a message: resolves once it is on disk. Refused with `outbox_full` past
   * maxBytes and `outbox_duplicate` when the id is already queued. A request's record
   * (`input.request`) is written in the same commit.
   */
  enqueue(input: EnqueueInput): Promise<OutboxEntry> {
    return this.accept(input, undefined)
  }

  /**
   * Receiver side: queue the reply to inbox message `doneId` and close that inbox entry, in one
   * journal record, so a crash leaves either both or neither (never a reply and an
   * `interrupted` for the same request).
   */
  enqueueReply(input: EnqueueInput, doneId: string): Promise<OutboxEntry> {
    return this.accept(input, doneId)
  }

  private accept(input: EnqueueInput, doneId: string | undefined): Promise<OutboxEntry> {
    if (this.closing) return Promise.reject(new OutpostError('outbox_closed', 'outbox: used after close()'))
    try {
      this.pending.hold([input])
    } catch (err) {
      return Promise.reject(err)
    }
    const seq = this.nextSeq++
    const { id, dest, createdAt, expiresAt, body, route, request } = input
    // With its route in one record (9, 10); while an upgrade may roll back, the records an
    // older outpost reads (1 or 8, and a separate request record).
    const routed = this.snapshots.newFormat && route !== undefined
    const op = messageRecord(input, seq, doneId, routed)
    // Appended in the same tick: both records land in the same group commit.
    const written: Promise<unknown> = !routed && doneId === undefined && request !== undefined
      ? Promise.all([this.append(op), this.recordRequest(id, dest, request.replyMethod, request.until)])
      : this.append(op)
    // A plain promise chain rather than an async function: this runs for every message.
    return written.then(() => {
      const stored: OutboxEntry = { id, dest, body, createdAt, expiresAt, seq, attempts: 0, nextAt: 0 }
      if (routed) stored.route = route
      return stored
    }, (err: unknown) => {
      this.pending.release([input])
      throw err
    })
  }

  /**
   * A slice of a request's messages in one go (one record each, as routedOp's; one promise for all): resolves once all
   * are on disk. Checked as a whole first (nothing stored): `outbox_full` if they do not all fit, `outbox_duplicate` if one is queued.
   */
  async enqueueAll(inputs: readonly (EnqueueInput & { route: Route })[]): Promise<void> {
    if (!this.snapshots.newFormat) {
      await Promise.all(inputs.map((input) => this.accept(input, undefined)))
      return
    }
    if (this.closing) throw new OutpostError('outbox_closed', 'outbox: used after close()')
    this.pending.hold(inputs)
    const ops: Op[] = []
    const records: Buffer[] = []
    try {
      for (const { id, dest, createdAt, expiresAt, body, route, request } of inputs) {
        const op: Op = [OP_ENQUEUE_ROUTED, id, dest, this.nextSeq++, createdAt, expiresAt, route.ackTimeout ?? NaN, route.retries ?? NaN, route.method, request?.replyMethod ?? '', request?.until ?? 0, body]
        records.push(encodeOp(op))
        ops.push(op)
      }
      await this.journal.appendAll(records, ops)
    } catch (err) {
      this.pending.release(inputs)
      throw err
    }
  }

  /** The receiver acknowledged (or the message expired): forget it. Resolves once that is on disk. */
  remove(id: string): Promise<void> {
    return this.append([OP_REMOVE, id])
  }

  /** remove() of several messages, one promise for all (see Journal.appendAll). */
  async removeAll(ids: readonly string[]): Promise<void> {
    if (this.closing) throw new OutpostError('outbox_closed', 'outbox: used after close()')
    const ops: Op[] = ids.map((id) => [OP_REMOVE, id])
    await this.journal.appendAll(ops.map(encodeOp), ops)
  }

  /** Record a delivery attempt, so a restart neither forgets spent attempts nor resends early. */
  recordAttempt(id: string, attempts: number, nextAt: number): Promise<void> {
    return this.append([OP_ATTEMPT, id, attempts, nextAt])
  }

  /** Receiver side: ids received (dedup for the window, 24 h by default); several (a batch's receipts) go in one append, one promise (if it fails, hasSeen() says which are on disk). */
  markSeen(ids: string | readonly string[], at = this.now()): Promise<void> {
    const list = typeof ids === 'string' ? [ids] : ids
    const bad = list.find((id) => id.startsWith(SENT_PREFIX))
    if (bad !== undefined) return Promise.reject(reservedId(bad))
    return this.seenOp(list, list.map((id): Op => [OP_SEEN, id, at]))
  }

  /**
   * Sender side: remember that request `id` went to `dest` naming `replyMethod`, until the
   * dedup window (24 h) after `until` (ms since the epoch: when its reply may last come). Call it
   * in the same tick as the request's enqueue: both land in one group commit.
   */
  recordRequest(id: string, dest: string, replyMethod: string, until: number): Promise<void> {
    const key = sentKey(id, dest, replyMethod)
    return this.seenOp([key], [[OP_SEEN, key, until]])
  }

  /** Whether this node sent request `id` to `dest` naming `replyMethod` (recordRequest), within its window. */
  sentRequest(id: string, dest: string, replyMethod: string): boolean {
    return this.hasSeen(sentKey(id, dest, replyMethod))
  }

  /**
   * Receiver side: record a message before ACKing it (it is then seen, and in the inbox until
   * finishRun or enqueueReply closes it). A message received but not started runs after a restart.
   */
  receive(id: string, from: string, body: Uint8Array, opts: { at?: number; started?: boolean; lazy?: boolean } = {}): Promise<void> {
    // lazy: nobody waits on it promptly (a reply its client already has); it may share a later commit.
    if (id.startsWith(SENT_PREFIX)) return Promise.reject(reservedId(id))
    const lazy = opts.lazy === true
    const add = this.seenOp([id], [[OP_INBOX_ADD, id, from, opts.at ?? this.now(), body]], lazy)
    if (!opts.started) return add
    // Appended in the same tick: both records land in the same group commit.
    const start = this.append([OP_INBOX_START, id], lazy)
    return Promise.all([add, start]).then(() => undefined)
  }

  private async seenOp(ids: readonly string[], ops: Op[], lazy = false): Promise<void> {
    for (const id of ids) this.pendingSeen.add(id)
    try {
      await (ops.length === 1 ? this.append(ops[0]!, lazy) : this.journal.appendAll(ops.map(encodeOp), ops))
    } catch (err) {
      // Not on disk: a resend must not be taken for a duplicate.
      for (const id of ids) this.pendingSeen.delete(id)
      throw err
    }
  }

  /** The method of inbox message `id` is about to run: after a crash it is reported interrupted, never rerun. */
  startRun(id: string): Promise<void> {
    return this.append([OP_INBOX_START, id])
  }

  /** Close an inbox entry without a reply (events, or when the reply went another way). */
  finishRun(id: string): Promise<void> {
    return this.append([OP_INBOX_DONE, id])
  }

  /** Inbox entries still open (after a restart: what to run, and what was interrupted). */
  inbox(): InboxEntry[] {
    return this.receiver.inbox()
  }

  hasSeen(id: string): boolean {
    return this.pendingSeen.has(id) || this.receiver.hasSeen(id)
  }

  get(id: string): OutboxEntry | undefined {
    const e = this.index.get(id)
    return e === undefined ? undefined : entry(e)
  }

  /** The oldest `limit` messages for a destination (with a seq above `after`), in FIFO order. */
  head(dest: string, limit = 1, after = 0): OutboxEntry[] {
    return this.index.head(dest, limit, after).map(entry)
  }

  /** head() without a copy each: live entries, to be read in the same turn and not kept (they change in place). */
  headView(dest: string, limit: number, after: number): readonly Readonly<OutboxEntry>[] { return this.index.head(dest, limit, after) }

  /** Destinations with messages waiting. */
  destinations(): string[] {
    return this.index.destinations()
  }

  /** Per destination: messages waiting, bytes, oldest createdAt. */
  perDestination(): Map<string, DestinationStats> {
    return this.index.perDestination()
  }

  /** Every waiting message in FIFO order (for tools and tests; the delivery loop uses head()). */
  all(): OutboxEntry[] {
    return this.index.all().map(entry)
  }

  stats(): OutboxStats {
    return {
      count: this.index.count,
      bytes: this.index.bytes + this.pending.bytes,
      maxBytes: this.maxBytes,
      seen: this.receiver.seenCount,
      journalBytes: this.journal.bytesInSegment,
      segment: this.journal.currentSegment,
      lastSnapshot: this.snapshots.lastSnapshot,
      recovery: { ...this.recovery },
      diskFull: this.journal.diskFull,
      reserveBytes: this.journal.reserveReady,
    }
  }

  /** The upgrade was confirmed: the next snapshot moves a store in format 1-3 to format 4 (records, the dedup set in runs). */
  useNewFormat(): void {
    this.snapshots.newFormat = true
  }

  /** The store's format now: 1 (bodies inline), 2 (body files), 3 (body files, the dedup set in runs), 4 (waiting messages as records in body files: FORMAT_WAITING_RECORDS). */
  get format(): 1 | 2 | 3 | 4 {
    if (this.index.layout === 'records') return FORMAT_WAITING_RECORDS
    if (this.index.layout === 'inline') return 1
    return this.receiver.seenLayout === 'runs' ? 3 : 2
  }

  /** Take a snapshot now (waits for in-flight writes); start-up then replays nothing. */
  checkpoint(): Promise<void> {
    return this.snapshots.checkpoint()
  }

  /** Finish pending writes, snapshot, release the lock. Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.snapshots.close()
      } finally {
        this.snapshots.clearTimer()
        await this.journal.close().catch(() => {})
        this.index.free()
        this.bodies.close()
        this.receiver.free()
        this.db.close()
        this.lock.release()
      }
    })()
    return this.closing
  }
  /** The seq the next message gets (at open: past every stored one). */
  get nextSequence(): number { return this.nextSeq }
}
