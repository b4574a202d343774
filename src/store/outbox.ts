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
 *
 * The sender's record of its requests (recordRequest / sentRequest: which node each went to and
 * which reply method it named, what authorises a reply) lives in the same `seen` set under keys
 * that start with `!`: below every ULID, and never an id this node receives (receive refuses it).
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { Database } from 'sql.js'
import { OutpostError } from '../errors'
import { Journal } from './journal'
import { acquireLock, type Lock } from './lock'
import { BodyStore } from './outbox-bodies'
import { OutboxIndex, type DestinationStats, type LiveEntry } from './outbox-index'
import { prepareOutboxTable } from './outbox-table'
import { RECEIVER_TABLES, ReceiverIndex, type InboxEntry } from './receiver-index'
import { encodeOp, isNewMessage, messageOf, type MessageOp, OP_ATTEMPT, OP_ENQUEUE, OP_INBOX_ADD, OP_INBOX_DONE, OP_INBOX_START, OP_REMOVE, OP_REPLY, OP_SEEN, routedOp, type Op, type Route } from './outbox-ops'
import { loadSnapshot, replayJournal, writeSnapshot, type JournalDamage } from './store-files'

/** How often the journal's pace is looked at while it is written to. */
const QUIET_MS = 1000
/** At most this many journal bytes in QUIET_MS is quiet (a trickle of retries and receipts). */
const QUIET_BYTES = 64 * 1024

/** Most bytes a journal segment is preallocated with (each is zero-filled once before use). */
const SEGMENT_BYTES = 4 * 1024 * 1024

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
  /**
   * How delivery sends it (ackTimeout, retries, method), stored with it; absent for a message
   * stored by an outpost before routes or while an upgrade may roll back.
   */
  route?: Route
}

export interface EnqueueInput {
  id: string
  dest: string
  body: Uint8Array
  createdAt: number
  expiresAt: number
  route?: Route
  /**
   * A request: remember that it went to `dest` naming `replyMethod`, until the dedup window
   * after `until` (when its reply may last come); what authorises its replies (sentRequest).
   */
  request?: { replyMethod: string; until: number }
}

export type { Route } from './outbox-ops'

export interface OutboxOptions {
  dir: string
  /** delivery.maxOutboxBytes: the most bytes of message bodies held at once. */
  maxBytes: number
  /** Journal bytes after which a snapshot is taken (bounds replay time at start). */
  checkpointBytes?: number
  /**
   * delivery.reserveBytes: zeros kept beside the journal (journal-reserve.dat) so that on a full
   * disk removals, replies and receipts are still written while new messages are refused; 0 (the
   * default here; the node passes the config's 4 MiB): none.
   */
  reserveBytes?: number
  /** Free bytes on the disk holding `dir` (tests inject one; default statfs). */
  free?: (dir: string) => Promise<number>
  /** How long ids are remembered for deduplication, in ms. */
  dedupWindowMs?: number
  now?: () => number
  /** Metrics hook: called with the size of each group-committed batch. */
  onBatch?: (records: number, bytes: number) => void
  /** Where warnings go (a torn journal tail, a dropped snapshot). */
  warn?: (message: string) => void
  /**
   * Called once the journal has been quiet for a second after a burst (a checkpoint's worth of
   * writes or more), after the snapshot that moved what it left in memory to the store: the
   * moment to give back memory the burst grew (node.ts: heap.ts).
   */
  afterBurst?: () => void
  /**
   * Write snapshots in the format outposts before body files read (format 1: bodies inside
   * sql.js) until useNewFormat() is called: while an upgrade may still be rolled back to such a
   * binary. A store already in format 2 stays in it (its previous binary reads it).
   */
  keepOldFormat?: boolean
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
  recovery: { snapshot: number; replayedRecords: number; droppedBytes: number; damagedRecords: number; damagedSnapshots: string[]; ms: number }
  /** The disk filled up: new messages are refused (disk_full) until space is back; the rest is written from the reserve. */
  diskFull: boolean
  /** Bytes of reserve ready for a full disk (0 while it is in use or being made again). */
  reserveBytes: number
}

export type { InboxEntry } from './receiver-index'
export type { JournalDamage } from './store-files'
export type { DestinationStats } from './outbox-index'

/**
 * The store is one class; each part of the message path sees only its facet of it.
 * Delivery (the send side) reads what waits per destination and settles it.
 */
export type OutboxFacet = Pick<Outbox, 'destinations' | 'head' | 'get' | 'remove' | 'recordAttempt'>
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
  /** Bytes of messages accepted but not yet on disk (the committed ones are index.bytes). */
  private pendingBytes = 0
  /** Ids enqueued or marked seen but not yet on disk: a second enqueue of one is refused. */
  private readonly pendingIds = new Set<string>()
  private readonly pendingSeen = new Set<string>()
  /** Records marked lazy by their caller (see receive()): the journal may hold them for company. */
  private readonly lazyOps = new WeakSet<Op>()
  private lastSnapshot: number
  private checkpointing: Promise<void> | undefined
  private closing: Promise<void> | undefined
  private recovery: OutboxStats['recovery']
  /**
   * What start-up found damaged in the journal (with good records after it), for the node to
   * give each lost message its outcome. Empty after a clean start.
   */
  damaged: JournalDamage[] = []
  /** The body files the newest durable snapshot names (kept while it is the one before the next). */
  private previousBodies: Set<number>
  private readonly afterBurst: (() => void) | undefined
  /** Journal bytes written since afterBurst was last called. */
  private burstBytes = 0
  /** Journal bytes written since the quiet timer last looked. */
  private quietWindowBytes = 0
  /** Whether snapshots may move a format-1 store to body files (keepOldFormat not set, or lifted). */
  private newFormat: boolean
  /** Armed by a commit: settle() looks at the journal's pace a second later. */
  private quietTimer: NodeJS.Timeout | undefined

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
    this.lastSnapshot = lastSnapshot
    this.previousBodies = named
    this.recovery = recovery
    this.afterBurst = opts.afterBurst
    this.newFormat = opts.keepOldFormat !== true
    this.nextSeq = index.maxSeq() + 1
    this.journal = Journal.create<Op>(opts.dir, nextSegment, {
      onCommit: (ops) => this.applyBatch(ops),
      onBatch: (records, bytes) => {
        this.burstBytes += bytes
        this.quietWindowBytes += bytes
        opts.onBatch?.(records, bytes)
      },
      // Receipts are ACKed once durable: commit a burst of them in pieces. A request's record
      // (a `!` key) is not a receipt: it rides with its enqueue, in whole batches.
      urgent: (op) => op[0] === OP_INBOX_ADD || (op[0] === OP_SEEN && !op[1].startsWith(SENT_PREFIX)),
      // Nobody waits on these promptly (delivery frees the window slot before the removal is
      // written): they ride with the next record someone waits on, instead of delaying it.
      lazy: (op) => op[0] === OP_REMOVE || op[0] === OP_ATTEMPT || op[0] === OP_INBOX_DONE || this.lazyOps.has(op),
      // On a full disk, what settles messages already accepted (removals, attempts, receipts,
      // runs, replies) is still written, from the reserve; new messages and their request
      // records are refused until space is back.
      settles: (op) => !isNewMessage(op) && !(op[0] === OP_SEEN && op[1].startsWith(SENT_PREFIX)),
      afterCommit: () => {
        if (this.snapshotDue() && !this.checkpointing && !this.closing) {
          this.startSnapshot()
        }
        this.armQuietTimer()
      },
    }, {
      // Preallocated (zero-filled) segments as large as a checkpoint, capped: disk taken ahead of need stays small.
      segmentBytes: Math.min(this.checkpointBytes, SEGMENT_BYTES),
      reserveBytes: opts.reserveBytes ?? 0,
      warn: this.warn,
      ...(opts.free !== undefined ? { free: opts.free } : {}),
    })
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
      const receiver = new ReceiverIndex(db.db)
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

  /** A snapshot in the background; its failure costs replay time, not data. */
  private startSnapshot(): void {
    this.checkpointing = this.snapshotNow()
      .catch((err: unknown) => this.warn(`outbox: snapshot failed (${(err as Error).message}); the journal keeps the data`))
      .finally(() => { this.checkpointing = undefined })
  }

  /** Look again in a second at how much the journal wrote meanwhile (armed by a commit). */
  private armQuietTimer(): void {
    if (this.quietTimer !== undefined || this.closing) return
    this.quietTimer = setTimeout(() => this.settle(), QUIET_MS)
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
    if (this.closing) return
    const busy = this.quietWindowBytes > QUIET_BYTES
    this.quietWindowBytes = 0
    // A snapshot still being written is part of the burst.
    if (busy || this.checkpointing) {
      this.armQuietTimer()
      return
    }
    if (this.index.inMemoryBytes > this.checkpointBytes / 16 && this.journal.bytesInSegment > 0) {
      this.startSnapshot()
      this.armQuietTimer()
      return
    }
    if (this.burstBytes >= this.checkpointBytes) {
      this.burstBytes = 0
      this.afterBurst?.()
    }
  }

  private applyBatch(ops: Op[]): void {
    for (const op of ops) {
      const m = applyOp(this.index, this.receiver, op)
      if (m !== undefined) {
        this.pendingIds.delete(m.id)
        this.pendingBytes -= m.body.length
      } else if (op[0] === OP_SEEN || op[0] === OP_INBOX_ADD) {
        this.pendingSeen.delete(op[1])
      }
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

  private async accept(input: EnqueueInput, doneId: string | undefined): Promise<OutboxEntry> {
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
    const { id, dest, createdAt, expiresAt, body, route, request } = input
    // With its route in one record (9, 10); while an upgrade may roll back, the records an
    // older outpost reads (1 or 8, and a separate request record).
    const routed = this.newFormat && route !== undefined
    let op: Op
    if (routed) {
      const m: MessageOp & { route: Route } = { id, dest, seq, createdAt, expiresAt, body, route }
      if (doneId !== undefined) m.doneId = doneId
      else if (request !== undefined) m.request = request
      op = routedOp(m)
    } else {
      op = doneId !== undefined ? [OP_REPLY, id, dest, seq, createdAt, expiresAt, body, doneId] : [OP_ENQUEUE, id, dest, seq, createdAt, expiresAt, body]
    }
    this.pendingBytes += size
    this.pendingIds.add(id)
    try {
      // Appended in the same tick: both records land in the same group commit.
      const records = [this.append(op)]
      if (!routed && doneId === undefined && request !== undefined) records.push(this.recordRequest(id, dest, request.replyMethod, request.until))
      await Promise.all(records)
    } catch (err) {
      this.pendingBytes -= size
      this.pendingIds.delete(id)
      throw err
    }
    const stored: OutboxEntry = { id, dest, body, createdAt, expiresAt, seq, attempts: 0, nextAt: 0 }
    if (routed) stored.route = route
    return stored
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
    if (id.startsWith(SENT_PREFIX)) return Promise.reject(reservedId(id))
    return this.seenOp(id, [OP_SEEN, id, at])
  }

  /**
   * Sender side: remember that request `id` went to `dest` naming `replyMethod`, until the
   * dedup window (24 h) after `until` (ms since the epoch: when its reply may last come). Call it
   * in the same tick as the request's enqueue: both land in one group commit.
   */
  recordRequest(id: string, dest: string, replyMethod: string, until: number): Promise<void> {
    const key = sentKey(id, dest, replyMethod)
    return this.seenOp(key, [OP_SEEN, key, until])
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
    const add = this.seenOp(id, [OP_INBOX_ADD, id, from, opts.at ?? this.now(), body], lazy)
    if (!opts.started) return add
    // Appended in the same tick: both records land in the same group commit.
    const start = this.append([OP_INBOX_START, id], lazy)
    return Promise.all([add, start]).then(() => undefined)
  }

  private async seenOp(id: string, op: Op, lazy = false): Promise<void> {
    this.pendingSeen.add(id)
    try {
      await this.append(op, lazy)
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
      bytes: this.index.bytes + this.pendingBytes,
      maxBytes: this.maxBytes,
      seen: this.receiver.seenCount,
      journalBytes: this.journal.bytesInSegment,
      segment: this.journal.currentSegment,
      lastSnapshot: this.lastSnapshot,
      recovery: { ...this.recovery },
      diskFull: this.journal.diskFull,
      reserveBytes: this.journal.reserveReady,
    }
  }

  /**
   * The previous binary no longer matters (the upgrade was confirmed): the next snapshot moves
   * a store still in format 1 to body files (format 2).
   */
  useNewFormat(): void {
    this.newFormat = true
  }

  /** The store's layout now: `inline` (format 1) or `files` (format 2). */
  get format(): 1 | 2 {
    return this.index.layout === 'inline' ? 1 : 2
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
    // Not on a full disk: it could not be written, and rotating would leave the reserve's room behind.
    if (this.journal.diskFull) return
    const covered = this.journal.rotate()
    if (this.newFormat && this.index.layout === 'inline') this.index.useBodyFiles()
    this.index.syncToStore(covered)
    this.receiver.syncToStore(this.now() - this.dedupWindowMs)
    // The body files this snapshot names; any other goes once it is durable.
    const inUse = this.bodies.inUse()
    if (!(await writeSnapshot(this.dir, covered, this.lastSnapshot, this.db.export(), this.warn, () => this.bodies.flush()))) return
    this.lastSnapshot = covered
    // The snapshot before this one is kept (what a damaged one falls back to), and its body files with it.
    const kept = new Set([...inUse, ...this.previousBodies])
    this.previousBodies = inUse
    await this.bodies.removeExcept(kept).catch((err: unknown) => this.warn(`outbox: removing unused body files failed (${(err as Error).message}); the next snapshot retries`))
  }

  /**
   * A snapshot moves the messages still in memory into sql.js, where removing one later costs a
   * statement each. So once `checkpointBytes` of journal have piled up it waits while a burst is
   * in flight (more than a sixteenth of that in memory, likely acknowledged within moments) and
   * runs once the burst has drained. Memory (as much in memory as the checkpoint size) and
   * replay time at start-up (four checkpoints of journal) bound the wait.
   */
  private snapshotDue(): boolean {
    const journal = this.journal.bytesInSegment
    if (journal < this.checkpointBytes) return false
    const hot = this.index.inMemoryBytes
    return hot <= this.checkpointBytes / 16 || hot >= this.checkpointBytes || journal >= 4 * this.checkpointBytes
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
        // A clean stop leaves one snapshot and nothing to replay: the next start is quick. One
        // that cannot be written (a disk filling up) costs replay time at the next start, no data.
        if (this.needsSnapshot()) await this.snapshotNow().catch((err: unknown) => this.warn(`outbox: snapshot at close failed (${(err as Error).message}); the journal keeps the data`))
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

/** Keys of the sender's request records in the seen set ('!' sorts below every ULID). */
const SENT_PREFIX = '!'

/** Digests of recent (receiver, reply method) pairs: a stream of requests names few, and a SHA-256 costs ~1.5 µs. */
const sentDigests = new Map<string, string>()
const SENT_DIGESTS = 1024

/** 43 bytes whatever the names' lengths: the id, and a digest of the receiver and reply method. */
function sentKey(id: string, dest: string, replyMethod: string): string {
  const pair = `${dest}\0${replyMethod}`
  let digest = sentDigests.get(pair)
  if (digest === undefined) {
    digest = createHash('sha256').update(pair).digest('base64url').slice(0, 16)
    if (sentDigests.size >= SENT_DIGESTS) sentDigests.clear()
    sentDigests.set(pair, digest)
  }
  return SENT_PREFIX + id + digest
}

function reservedId(id: string): OutpostError {
  return new OutpostError('envelope_invalid', `store: id ${JSON.stringify(id.slice(0, 40))} starts with '${SENT_PREFIX}', which is reserved for this node's request records; not recorded`)
}

/** One journal op applied to the in-memory state: the same at replay and live. Returns the message an op queued. */
function applyOp(index: OutboxIndex, receiver: ReceiverIndex, op: Op): MessageOp | undefined {
  const m = messageOf(op)
  if (m !== undefined) {
    const e: LiveEntry = { id: m.id, dest: m.dest, seq: m.seq, createdAt: m.createdAt, expiresAt: m.expiresAt, attempts: 0, nextAt: 0, body: m.body }
    if (m.route !== undefined) e.route = m.route
    index.add(e)
    if (m.doneId !== undefined) receiver.done(m.doneId)
    if (m.request !== undefined) receiver.seen(sentKey(m.id, m.dest, m.request.replyMethod), m.request.until)
    return m
  }
  switch (op[0]) {
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
  }
  return undefined
}

/** A copy for callers: they may keep it while the index changes the live one. */
function entry(e: LiveEntry): OutboxEntry {
  const out: OutboxEntry = { id: e.id, dest: e.dest, seq: e.seq, body: e.body, createdAt: e.createdAt, expiresAt: e.expiresAt, attempts: e.attempts, nextAt: e.nextAt }
  if (e.route) out.route = e.route
  return out
}
