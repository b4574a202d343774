/**
 * The durable outbox: messages waiting for their receiver's ACK, per-destination FIFO order,
 * and the receiver's dedup set. The journal makes them durable; sql.js holds the snapshots.
 *
 *   enqueue/remove/attempt ─▶ journal (group-committed, fdatasync) ─▶ live index (outbox-index.ts) ─▶ resolved
 *   markSeen / receive / startRun / finishRun ─▶ journal ─▶ sql.js `seen` and `inbox` tables ─▶ resolved
 *   every `checkpointBytes` of journal: rotate segment ─▶ index synced into sql.js (bodies into
 *   bodies-<n>.dat, outbox-bodies.ts) ─▶ db.export() ─▶ body files written (fsync) ─▶
 *   snapshot-<n>.db (tmp, fsync, rename, fsync dir) ─▶ segments ≤ n and unused body files deleted
 *   open: newest snapshot ─▶ replay later segments (torn tail dropped) ─▶ ready
 *
 * Nothing is visible to readers (head, get, hasSeen) before it is on disk.
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Database } from 'sql.js'
import { OutpostError } from './errors'
import { Journal } from './journal'
import { acquireLock, type Lock } from './lock'
import { BodyStore } from './outbox-bodies'
import { OutboxIndex, prepareOutboxTable, type LiveEntry } from './outbox-index'
import { RECEIVER_TABLES, ReceiverIndex, type InboxEntry } from './receiver-index'
import { encodeOp, OP_ATTEMPT, OP_ENQUEUE, OP_INBOX_ADD, OP_INBOX_DONE, OP_INBOX_START, OP_REMOVE, OP_REPLY, OP_SEEN, type Op } from './outbox-ops'
import { loadSnapshot, replayJournal, writeSnapshot } from './store-files'

export interface OutboxEntry {
  id: string
  /** The receiving node. */
  dest: string
  /** Position in the global FIFO; per destination, lower goes first. */
  seq: number
  /** The encoded envelope, exactly as it goes on the wire. */
  body: Uint8Array
  createdAt: number
  /** Milliseconds since the epoch after which the message is given up (ttl). */
  expiresAt: number
  /** Delivery attempts spent so far. */
  attempts: number
  /** Not to be sent again before this time (ms since the epoch). */
  nextAt: number
}

export interface EnqueueInput {
  id: string
  dest: string
  body: Uint8Array
  createdAt: number
  expiresAt: number
}

export interface OutboxOptions {
  dir: string
  /** delivery.maxOutboxBytes: the most bytes of message bodies held at once. */
  maxBytes: number
  /** Journal bytes after which a snapshot is taken (bounds replay time at start). */
  checkpointBytes?: number
  /** How long ids are remembered for deduplication, in ms. */
  dedupWindowMs?: number
  now?: () => number
  /** Metrics hook: called with the size of each group-committed batch. */
  onBatch?: (records: number, bytes: number) => void
  /** Where warnings go (a torn journal tail, a dropped snapshot). */
  warn?: (message: string) => void
  /**
   * Called once the journal has been quiet for a second after a burst (a snapshot's worth of
   * writes or more): the moment to give back memory the burst grew (node.ts: heap.ts).
   */
  afterBurst?: () => void
}

export interface OutboxStats {
  count: number
  bytes: number
  maxBytes: number
  seen: number
  journalBytes: number
  segment: number
  lastSnapshot: number
  /** Filled in by open(): what the start-up had to do. */
  recovery: { snapshot: number; replayedRecords: number; droppedBytes: number; ms: number }
}

export type { InboxEntry } from './receiver-index'


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
  /** Bytes of messages accepted but not yet on disk (the committed ones are index.bytes). */
  private pendingBytes = 0
  /** Ids enqueued or marked seen but not yet on disk: a second enqueue of one is refused. */
  private readonly pendingIds = new Set<string>()
  private readonly pendingSeen = new Set<string>()
  private lastSnapshot: number
  private checkpointing: Promise<void> | undefined
  private closing: Promise<void> | undefined
  private recovery: OutboxStats['recovery']
  private readonly afterBurst: (() => void) | undefined
  /** Snapshots taken since afterBurst was last called, and the timer that calls it. */
  private burstSnapshots = 0
  private quietTimer: NodeJS.Timeout | undefined

  private constructor(opts: OutboxOptions, db: Database, bodies: BodyStore, index: OutboxIndex, receiver: ReceiverIndex, lock: Lock, lastSnapshot: number, nextSegment: number, recovery: OutboxStats['recovery']) {
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
    this.lastSnapshot = lastSnapshot
    this.recovery = recovery
    this.afterBurst = opts.afterBurst
    this.nextSeq = index.maxSeq() + 1
    this.journal = Journal.create<Op>(opts.dir, nextSegment, {
      onCommit: (ops) => this.applyBatch(ops),
      ...(opts.onBatch ? { onBatch: opts.onBatch } : {}),
      // Receipts are ACKed once durable: commit a burst of them in pieces.
      urgent: (op) => op[0] === OP_INBOX_ADD || op[0] === OP_SEEN,
      afterCommit: () => {
        if (this.journal.bytesInSegment >= this.checkpointBytes && !this.checkpointing && !this.closing) {
          this.checkpointing = this.snapshotNow()
            .then(() => { this.burstSnapshots++ })
            .catch((err: unknown) => this.warn(`outbox: snapshot failed (${(err as Error).message}); the journal keeps the data`))
            .finally(() => { this.checkpointing = undefined })
        }
        if (this.afterBurst !== undefined) this.armQuietTimer()
      },
    })
  }

  /** Open (or create) the outbox in `dir`: load the newest snapshot, replay the journal after it. */
  static async open(opts: OutboxOptions): Promise<Outbox> {
    const started = performance.now()
    fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 })
    const lock = acquireLock(path.join(opts.dir, 'lock'))
    try {
      const db = await loadSnapshot(opts.dir)
      prepareOutboxTable(db.db)
      db.db.exec(RECEIVER_TABLES)
      const bodies = new BodyStore(opts.dir)
      const index = new OutboxIndex(db.db, bodies, opts.warn ?? (() => {}))
      const receiver = new ReceiverIndex(db.db)
      const r = replayJournal(opts.dir, db.snapshot, (op) => applyOp(index, receiver, op), opts.warn ?? (() => {}))
      const ob = new Outbox(opts, db.db, bodies, index, receiver, lock, db.snapshot, r.nextSegment, { snapshot: db.snapshot, replayedRecords: r.replayed, droppedBytes: r.dropped, ms: 0 })
      ob.recovery.ms = performance.now() - started
      return ob
    } catch (err) {
      lock.release()
      throw err
    }
  }

  /** (Re)start the quiet second after which a burst counts as over. */
  private armQuietTimer(): void {
    if (this.quietTimer !== undefined) this.quietTimer.refresh()
    else {
      this.quietTimer = setTimeout(() => {
        this.quietTimer = undefined
        if (this.closing) return
        // A snapshot still being written is part of the burst: wait a quiet second after it.
        if (this.checkpointing) void this.checkpointing.then(() => this.armQuietTimer())
        else if (this.burstSnapshots > 0) {
          this.burstSnapshots = 0
          this.afterBurst?.()
        }
      }, 1000)
      this.quietTimer.unref()
    }
  }

  private applyBatch(ops: Op[]): void {
    for (const op of ops) {
      applyOp(this.index, this.receiver, op)
      if (op[0] === OP_ENQUEUE || op[0] === OP_REPLY) {
        this.pendingIds.delete(op[1])
        this.pendingBytes -= op[6].length
      } else if (op[0] === OP_SEEN || op[0] === OP_INBOX_ADD) {
        this.pendingSeen.delete(op[1])
      }
    }
  }

  private append(op: Op): Promise<void> {
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
   * maxBytes and `outbox_duplicate` when the id is already queued.
   */
  enqueue(input: EnqueueInput): Promise<OutboxEntry> {
    return this.accept(input, [OP_ENQUEUE, input.id, input.dest, 0, input.createdAt, input.expiresAt, input.body])
  }

  /**
   * Receiver side: queue the reply to inbox message `doneId` and close that inbox entry, in one
   * journal record, so a crash leaves either both or neither (never a reply and an
   * `interrupted` for the same request).
   */
  enqueueReply(input: EnqueueInput, doneId: string): Promise<OutboxEntry> {
    return this.accept(input, [OP_REPLY, input.id, input.dest, 0, input.createdAt, input.expiresAt, input.body, doneId])
  }

  private async accept(input: EnqueueInput, op: Extract<Op, [typeof OP_ENQUEUE | typeof OP_REPLY, ...unknown[]]>): Promise<OutboxEntry> {
    if (this.closing) throw new OutpostError('outbox_closed', 'outbox: used after close()')
    const size = input.body.length
    const held = this.index.bytes + this.pendingBytes
    if (held + size > this.maxBytes) {
      throw new OutpostError('outbox_full', `outbox: full (${held} of ${this.maxBytes} bytes held; delivery.maxOutboxBytes); message ${input.id} of ${size} bytes not accepted`)
    }
    if (this.pendingIds.has(input.id) || this.index.has(input.id)) {
      throw new OutpostError('outbox_duplicate', `outbox: message ${input.id} is already queued`)
    }
    const seq = this.nextSeq++
    op[3] = seq
    this.pendingBytes += size
    this.pendingIds.add(input.id)
    try {
      await this.append(op)
    } catch (err) {
      this.pendingBytes -= size
      this.pendingIds.delete(input.id)
      throw err
    }
    return { ...input, seq, attempts: 0, nextAt: 0 }
  }

  /** The receiver acknowledged (or the message expired): forget it. Resolves once that is on disk. */
  remove(id: string): Promise<void> {
    return this.append([OP_REMOVE, id])
  }

  /** Record a delivery attempt, so a restart neither forgets spent attempts nor resends early. */
  recordAttempt(id: string, attempts: number, nextAt: number): Promise<void> {
    return this.append([OP_ATTEMPT, id, attempts, nextAt])
  }

  /** Receiver side: remember that this id was received (dedup for the window, 24 h by default). */
  markSeen(id: string, at = this.now()): Promise<void> {
    return this.seenOp(id, [OP_SEEN, id, at])
  }

  /**
   * Receiver side: record a message before ACKing it (it is then seen, and in the inbox until
   * finishRun or enqueueReply closes it). A message received but not started runs after a restart.
   */
  receive(id: string, from: string, body: Uint8Array, opts: { at?: number; started?: boolean } = {}): Promise<void> {
    const add = this.seenOp(id, [OP_INBOX_ADD, id, from, opts.at ?? this.now(), body])
    if (!opts.started) return add
    // Appended in the same tick: both records land in the same group commit.
    const start = this.startRun(id)
    return Promise.all([add, start]).then(() => undefined)
  }

  private async seenOp(id: string, op: Op): Promise<void> {
    this.pendingSeen.add(id)
    try {
      await this.append(op)
    } catch (err) {
      // Not on disk: a resend must not be taken for a duplicate.
      this.pendingSeen.delete(id)
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

  /** Destinations with messages waiting. */
  destinations(): string[] {
    return this.index.destinations()
  }

  /** Every waiting message in FIFO order (for tools and tests; the delivery loop uses head()). */
  all(): OutboxEntry[] {
    return this.index.all().map(entry)
  }

  stats(): OutboxStats {
    return {
      count: this.index.count,
      bytes: this.index.bytes + this.pendingBytes,
      maxBytes: this.maxBytes,
      seen: this.receiver.seenCount,
      journalBytes: this.journal.bytesInSegment,
      segment: this.journal.currentSegment,
      lastSnapshot: this.lastSnapshot,
      recovery: { ...this.recovery },
    }
  }

  /** Take a snapshot now (waits for in-flight writes); start-up then replays nothing. */
  async checkpoint(): Promise<void> {
    while (this.checkpointing) await this.checkpointing
    await this.journal.drain()
    while (!this.journal.idle) await this.journal.drain()
    if (!this.needsSnapshot()) return
    this.checkpointing = this.snapshotNow().finally(() => { this.checkpointing = undefined })
    await this.checkpointing
  }

  /**
   * Rotate the journal and export sql.js synchronously (the state then matches exactly the
   * closed segments), then write the body files and the snapshot and drop what it covers.
   */
  private async snapshotNow(): Promise<void> {
    const covered = this.journal.rotate()
    this.index.syncToStore(covered, this.warn)
    this.receiver.syncToStore(this.now() - this.dedupWindowMs)
    // The body files this snapshot names; any other goes once it is durable.
    const inUse = this.bodies.inUse()
    if (!(await writeSnapshot(this.dir, covered, this.db.export(), this.warn, () => this.bodies.flush()))) return
    this.lastSnapshot = covered
    await this.bodies.removeExcept(inUse).catch((err: unknown) => this.warn(`outbox: removing unused body files failed (${(err as Error).message}); the next snapshot retries`))
  }

  /** Whether a start-up now would replay anything. */
  private needsSnapshot(): boolean {
    return this.journal.bytesInSegment > 0 || (this.recovery.replayedRecords > 0 && this.lastSnapshot === this.recovery.snapshot)
  }

  /** Finish pending writes, snapshot, release the lock. Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        while (this.checkpointing) await this.checkpointing
        await this.journal.drain()
        // A clean stop leaves one snapshot and nothing to replay: the next start is quick.
        if (this.needsSnapshot()) await this.snapshotNow()
      } finally {
        if (this.quietTimer !== undefined) clearTimeout(this.quietTimer)
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

}

/** One journal op applied to the in-memory state: the same at replay and live. */
function applyOp(index: OutboxIndex, receiver: ReceiverIndex, op: Op): void {
  switch (op[0]) {
    case OP_ENQUEUE:
      index.add({ id: op[1], dest: op[2], seq: op[3], createdAt: op[4], expiresAt: op[5], attempts: 0, nextAt: 0, body: op[6] })
      break
    case OP_REMOVE:
      index.remove(op[1])
      break
    case OP_ATTEMPT:
      index.attempt(op[1], op[2], op[3])
      break
    case OP_SEEN:
      receiver.seen(op[1], op[2])
      break
    case OP_INBOX_ADD:
      receiver.add(op[1], op[2], op[3], op[4])
      break
    case OP_INBOX_START:
      receiver.start(op[1])
      break
    case OP_INBOX_DONE:
      receiver.done(op[1])
      break
    case OP_REPLY:
      index.add({ id: op[1], dest: op[2], seq: op[3], createdAt: op[4], expiresAt: op[5], attempts: 0, nextAt: 0, body: op[6] })
      receiver.done(op[7])
      break
  }
}

/** A copy for callers: they may keep it while the index changes the live one. */
function entry(e: LiveEntry): OutboxEntry {
  return { id: e.id, dest: e.dest, seq: e.seq, body: e.body, createdAt: e.createdAt, expiresAt: e.expiresAt, attempts: e.attempts, nextAt: e.nextAt }
}
